"""The overlapped image pipeline returns what the plain loop returns, in the same order."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmodal.embedder import l2_normalize
from crossmodal.errors import ConfigError, ImageDecodeError
from crossmodal.pipeline import ImagePipeline, auto_batch_size, auto_workers, prepare_image
from crossmodal.preprocessing.images import ImageTransform, load_image

from .conftest import shared_images


@pytest.fixture(scope="module")
def inputs(images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """Real photos in every input form, with two bad inputs in the middle."""
    bad = tmp_path_factory.mktemp("bad") / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    photos = shared_images()
    items: list = list(photos)
    items.insert(5, bad)
    items.insert(11, str(images_dir / "formats" / "missing.jpg"))
    items.append(photos[0].read_bytes())
    items.append(np.asarray(Image.open(photos[1]).convert("RGB")))
    items.append(Image.open(photos[2]))
    return items


def _plain_loop(model, items: list) -> tuple[list[int], np.ndarray]:
    """The naive reference: one input at a time, preprocessed and encoded on its own."""
    indices, vectors = [], []
    for i, item in enumerate(items):
        try:
            pixels = model.preprocess_image(item)
        except ImageDecodeError:
            continue
        indices.append(i)
        vectors.append(l2_normalize(model.encoder.encode_images(pixels[None]))[0])
    return indices, np.stack(vectors)


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_pipelined_ingest_equals_the_plain_loop(tiny_model, inputs: list, workers: int) -> None:
    indices, expected = _plain_loop(tiny_model, inputs)
    batches = list(tiny_model.iter_images(iter(inputs), batch_size=4, workers=workers, on_error="skip"))
    got_indices = np.concatenate([b.indices for b in batches])
    np.testing.assert_array_equal(got_indices, indices)
    assert np.abs(np.concatenate([b.vectors for b in batches]) - expected).max() <= 1e-6
    failed = [f.index for b in batches for f in b.failures]
    assert failed == [5, 11]


def test_worker_processes_give_the_same_batches_as_threads(tiny_model, inputs: list) -> None:
    cfg = tiny_model.spec.image
    runs = []
    for processes in (False, True):
        with ImagePipeline(cfg, batch_size=5, workers=2, processes=processes) as pipeline:
            runs.append(list(pipeline.batches(inputs[:-1])))  # an unloaded PIL image cannot be pickled
    for a, b in zip(*runs):
        assert a.indices == b.indices
        assert [f[0] for f in a.failures] == [f[0] for f in b.failures]
        np.testing.assert_array_equal(a.pixels, b.pixels)


def test_batches_hold_the_reference_pixels_in_order(tiny_model, inputs: list) -> None:
    transform = ImageTransform(tiny_model.spec.image)
    with ImagePipeline(tiny_model.spec.image, batch_size=3, workers=2) as pipeline:
        for batch in pipeline.batches(inputs):
            assert batch.pixels.flags.c_contiguous and batch.pixels.dtype == np.float32
            assert len(batch.pixels) == len(batch.indices)
            for row, index in zip(batch.pixels, batch.indices):
                np.testing.assert_array_equal(row, transform(load_image(inputs[index])))
            for index, name, error in batch.failures:
                assert isinstance(error, ImageDecodeError) and name in str(error) and index in (5, 11)


def test_a_batch_of_failures_yields_no_rows(tiny_model, tmp_path: Path) -> None:
    bad = [tmp_path / f"missing-{i}.jpg" for i in range(3)]
    batches = list(tiny_model.iter_images(bad, on_error="skip", workers=1))
    assert sum(len(b.vectors) for b in batches) == 0
    assert [f.index for b in batches for f in b.failures] == [0, 1, 2]


def test_the_stream_is_read_only_a_few_batches_ahead(tiny_model, images_dir: Path) -> None:
    photos = shared_images()
    pulled = 0

    def paths():
        nonlocal pulled
        for i in range(10_000):
            pulled += 1
            yield photos[i % len(photos)]

    it = tiny_model.iter_images(paths(), batch_size=4, workers=2)
    for _ in range(3):
        next(it)
    # 3 consumed + 1 being encoded + prefetch (2) + 1 being prepared, of 4 each
    assert pulled <= 4 * 7
    it.close()


def test_encoding_runs_ahead_in_input_order(fake_model, images_dir: Path) -> None:
    """The encoder sees batches in order, one call at a time, and errors surface at their batch."""
    photos = shared_images()[:20]
    seen: list[int] = []
    active = threading.Semaphore(1)

    def encoder(pixels: np.ndarray) -> np.ndarray:
        assert active.acquire(blocking=False), "two encoder calls overlapped"
        try:
            seen.append(len(pixels))
            if len(seen) == 4:
                raise RuntimeError("engine failure in batch 4")
            return np.zeros((len(pixels), 2), dtype=np.float32)
        finally:
            active.release()

    with ImagePipeline(fake_model.spec.image, batch_size=6, workers=2) as pipeline:
        it = pipeline.encode(photos, encoder)
        got = [next(it)[0].indices for _ in range(3)]
        assert got == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18))]
        with pytest.raises(RuntimeError, match="batch 4"):
            next(it)


def test_fast_preparation_stays_close_to_exact(tiny_model, images_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_model.spec.image
    big = tmp_path / "big.jpg"
    Image.open(images_dir / "st-image-search" / "eiffel-tower-day.jpg").resize((1280, 1920)).save(big, quality=92)
    for path in [big, *shared_images()[:10]]:
        _, exact = prepare_image(path, cfg, None, fast=False)
        _, fast = prepare_image(path, cfg, None, fast=True)
        assert exact.shape == fast.shape
        diff = np.abs(exact.astype(int) - fast.astype(int))
        assert diff.mean() < 3, path  # the same picture, resampled slightly differently


def test_exact_preparation_is_the_reference_transform(tiny_model) -> None:
    for path in shared_images()[:10]:
        _, prepared = prepare_image(path, tiny_model.spec.image, None, fast=False)
        np.testing.assert_array_equal(prepared, ImageTransform(tiny_model.spec.image).resize(load_image(path)))


def test_automatic_sizes() -> None:
    assert [auto_workers(c) for c in (1, 2, 3, 4, 8, 64)] == [1, 1, 1, 2, 4, 4]
    assert auto_batch_size(None) == auto_batch_size("cpu") == 8
    assert auto_batch_size("cuda:0") == 128
    assert [auto_workers(c, "cuda") for c in (1, 2, 8, 64)] == [1, 1, 7, 16]
    with pytest.raises(ConfigError):
        ImagePipeline(pytest.importorskip("crossmodal.testing.fake").fake_spec().image, workers=-1)
