"""The embedding core: equal to the reference on every path, normalized, deterministic, robust to bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import crossmodal
from crossmodal.errors import EmptyText, ImageDecodeError, ImageTooLarge, InputError, ModelNotFound, TextTooLong
from crossmodal.preprocessing.images import load_image

from .conftest import shared_images

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = ["a dog", "a photo of a cat", "一条龙", "Two dogs in the snow!", "an eiffel tower at night, lit up", "x"]
FAMILIES = ["clip", "siglip", "chinese_clip"]


def _pil_processor(family: str, root: Path):
    from transformers.models.chinese_clip.image_processing_pil_chinese_clip import ChineseCLIPImageProcessorPil
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    cls = {"clip": CLIPImageProcessorPil, "siglip": SiglipImageProcessorPil, "chinese_clip": ChineseCLIPImageProcessorPil}
    return cls[family].from_pretrained(str(root))


def _features(out):
    return out if hasattr(out, "shape") else out.pooler_output


def reference_vectors(root: Path, family: str, texts: list[str], images: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """transformers on the same weights, preprocessed by transformers' own processor: raw projections."""
    model = transformers.AutoModel.from_pretrained(str(root)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(root))
    if family == "siglip":
        # As trained and as documented: padded to max_length, and only input_ids (no attention mask).
        ids = tok(texts, padding="max_length", truncation=True, return_tensors="pt")
        text_inputs = {"input_ids": ids["input_ids"]}
    else:
        text_inputs = dict(tok(texts, padding=True, truncation=True, return_tensors="pt"))
    pil = [Image.open(p) for p in images]
    from PIL import ImageOps

    pil = [ImageOps.exif_transpose(p) for p in pil]
    pixels = _pil_processor(family, root)(images=pil, return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        text = _features(model.get_text_features(**text_inputs)).numpy()
        image = _features(model.get_image_features(pixel_values=pixels)).numpy()
    return text, image


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def photos(images_dir: Path) -> list[Path]:
    return [p for p in shared_images() if p.suffix.lower() in (".jpg", ".png", ".jpeg")][:24]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_vectors_equal_the_reference(family: str, runtime: str, request: pytest.FixtureRequest, photos, model_cache) -> None:
    source: Path = request.getfixturevalue(f"tiny_{family}_dir")
    root = request.getfixturevalue(f"tiny_{family}_onnx_dir") if runtime == "onnx" else source
    model = crossmodal.load_model(root, runtime=runtime, cache_dir=model_cache)
    ref_text, ref_image = reference_vectors(source, family, TEXTS, photos)
    # Normalized vectors: the reference followed by L2 normalization.
    assert np.abs(model.embed_texts(TEXTS) - _normalize(ref_text)).max() <= 1e-5
    assert np.abs(model.embed_images(photos) - _normalize(ref_image)).max() <= 1e-5
    # Raw vectors: the reference's own projections.
    raw_text = model.embed_texts(TEXTS, normalize=False)
    raw_image = model.embed_images(photos, normalize=False)
    assert np.abs(raw_text - ref_text).max() <= 1e-5 * max(1.0, np.abs(ref_text).max())
    assert np.abs(raw_image - ref_image).max() <= 1e-5 * max(1.0, np.abs(ref_image).max())


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_and_torch_runtimes_agree_and_share_a_space(family: str, request: pytest.FixtureRequest, photos, model_cache) -> None:
    onnx = crossmodal.load_model(request.getfixturevalue(f"tiny_{family}_onnx_dir"), cache_dir=model_cache)
    pt = crossmodal.load_model(request.getfixturevalue(f"tiny_{family}_dir"), runtime="torch")
    assert onnx.space == pt.space
    assert np.abs(onnx.embed_texts(TEXTS) - pt.embed_texts(TEXTS)).max() <= 1e-6
    assert np.abs(onnx.embed_images(photos[:6]) - pt.embed_images(photos[:6])).max() <= 1e-6


def test_every_vector_has_unit_norm(tiny_model, photos) -> None:
    for vectors in (tiny_model.embed_texts(TEXTS), tiny_model.embed_images(photos),
                    tiny_model.embed_pairs(photos[:3], TEXTS[:3])):
        assert vectors.dtype == np.float32
        assert np.abs(np.linalg.norm(vectors, axis=1) - 1).max() <= 1e-6
    raw = tiny_model.embed_texts(TEXTS, normalize=False)
    assert np.abs(np.linalg.norm(raw, axis=1) - 1).max() > 1e-3


def test_batch_of_one_equals_batch_of_64(tiny_model, images_dir: Path) -> None:
    paths = (shared_images() * 2)[:64]
    texts = [f"caption number {i} of a {w}" for i, w in enumerate(["cat", "dog", "tree", "boat"] * 16)]
    for embed, items in ((tiny_model.embed_images, paths), (tiny_model.embed_texts, texts)):
        together = embed(items, batch_size=64)
        alone = np.concatenate([embed([item], batch_size=1) for item in items])
        assert together.shape == (64, tiny_model.dim)
        assert np.abs(together - alone).max() <= 1e-6


def test_streaming_iterator_equals_one_call(tiny_model, photos) -> None:
    batches = list(tiny_model.iter_images(iter(photos), batch_size=5))
    assert len(batches) == -(-len(photos) // 5)
    streamed = np.concatenate([b.vectors for b in batches])
    np.testing.assert_array_equal(np.concatenate([b.indices for b in batches]), np.arange(len(photos)))
    assert np.abs(streamed - tiny_model.embed_images(photos)).max() <= 1e-6
    text_batches = list(tiny_model.iter_texts((t for t in TEXTS * 3), batch_size=4))
    order = np.concatenate([b.indices for b in text_batches])
    np.testing.assert_array_equal(order, np.arange(len(TEXTS) * 3))
    assert np.abs(np.concatenate([b.vectors for b in text_batches]) - tiny_model.embed_texts(TEXTS * 3)).max() <= 1e-6


def test_a_generator_is_not_read_all_at_once(tiny_model, photos) -> None:
    consumed = 0

    def paths():
        nonlocal consumed
        for i in range(2000):
            consumed += 1
            yield photos[i % len(photos)]

    it = tiny_model.iter_images(paths(), batch_size=8)
    first = next(it)
    assert len(first.vectors) == 8
    assert consumed <= 64, f"{consumed} inputs were read to make the first batch of 8"
    it.close()


def test_path_bytes_pil_and_array_inputs_give_the_same_vector(tiny_model, images_dir: Path) -> None:
    path = images_dir / "formats" / "cat.jpg"
    inputs = [path, str(path), path.read_bytes(), Image.open(path), np.asarray(load_image(path))]
    vectors = tiny_model.embed_images(inputs)
    assert np.abs(vectors - vectors[0]).max() <= 1e-6


def test_pairs_are_the_normalized_weighted_sum(tiny_model, photos) -> None:
    img = tiny_model.embed_images(photos[:4])
    txt = tiny_model.embed_texts(TEXTS[:4])
    pairs = tiny_model.embed_pairs(photos[:4], TEXTS[:4])
    assert np.abs(pairs - _normalize(0.5 * img + 0.5 * txt)).max() <= 1e-6
    heavy = tiny_model.embed_pairs(photos[:4], TEXTS[:4], image_weight=0.8)
    assert np.abs(heavy - _normalize(0.8 * img + 0.2 * txt)).max() <= 1e-6
    assert np.abs(tiny_model.embed_pairs(photos[:4], TEXTS[:4], image_weight=1.0) - img).max() <= 1e-6
    with pytest.raises(InputError, match="as many texts as images"):
        tiny_model.embed_pairs(photos[:4], TEXTS[:3])


def test_two_processes_give_bit_identical_vectors(tiny_clip_onnx_dir: Path, model_cache: Path, tmp_path: Path, images_dir: Path) -> None:
    script = (
        "import sys, crossmodal, numpy as np\n"
        f"m = crossmodal.load_model({str(tiny_clip_onnx_dir)!r}, cache_dir={str(model_cache)!r})\n"
        f"t = m.embed_texts({TEXTS!r})\n"
        f"i = m.embed_images([{str(images_dir / 'formats' / 'cat.jpg')!r}, {str(images_dir / 'formats' / 'bee.jpg')!r}])\n"
        "np.save(sys.argv[1], np.concatenate([t, i]))\n"
    )
    runs = []
    for n in range(2):
        out = tmp_path / f"run{n}.npy"
        subprocess.run([sys.executable, "-c", script, str(out)], check=True)
        runs.append(np.load(out))
    assert runs[0].tobytes() == runs[1].tobytes()


def test_torch_runtime_is_in_eval_mode_even_with_dropout(tmp_path: Path, clip_bpe: bytes) -> None:
    from crossmodal.testing.models import build_model

    root = build_model(tmp_path / "dropout", family="clip", bpe=clip_bpe)
    config = json.loads((root / "config.json").read_text())
    config["text_config"]["attention_dropout"] = 0.5
    config["vision_config"]["attention_dropout"] = 0.5
    (root / "config.json").write_text(json.dumps(config))
    model = crossmodal.load_model(root, runtime="torch")
    assert not model.encoder.model.training
    first, second = model.embed_texts(TEXTS), model.embed_texts(TEXTS)
    assert first.tobytes() == second.tobytes()
    pixels = np.stack([model.preprocess_image(Image.new("RGB", (40, 30), (9, 99, 199)))])
    assert model.encoder.encode_images(pixels).tobytes() == model.encoder.encode_images(pixels).tobytes()
    # inference_mode: nothing keeps an autograd graph
    assert all(not p.requires_grad or p.grad is None for p in model.encoder.model.parameters())


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (w, h)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_inputs_raise_one_clear_error_naming_the_input(tiny_model, tmp_path: Path, images_dir: Path) -> None:
    good = images_dir / "formats" / "cat.jpg"
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:3000])
    cases = [
        ([good, corrupt], ImageDecodeError, r"input #1: cannot .* image .*corrupt\.jpg"),
        ([truncated], ImageDecodeError, r"input #0: cannot (open|decode) image .*truncated\.jpg"),
        ([good, good, tmp_path / "missing.png"], ImageDecodeError, r"input #2: image file not found: .*missing\.png"),
        ([_png(20_000, 10_000)], ImageTooLarge, r"input #0: <\d+ bytes> is too large to decode safely"),
    ]
    for items, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            tiny_model.embed_images(items)
    with pytest.raises(EmptyText, match=r"input #1: empty text ''"):
        tiny_model.embed_texts(["a dog", ""])
    with pytest.raises(TextTooLong, match="input #0"):
        tiny_model.embed_texts(["word " * 100], truncate=False)
    with pytest.raises(InputError, match="list of strings, not one string"):
        tiny_model.embed_texts("a dog")
    with pytest.raises(InputError, match="not one image; wrap it"):
        tiny_model.embed_images(str(good))
    with pytest.raises(InputError, match="not one image; wrap it"):
        tiny_model.embed_images(np.zeros((8, 8, 3), dtype=np.uint8))
    assert tiny_model.embed_images(np.zeros((2, 8, 8, 3), dtype=np.uint8)).shape == (2, tiny_model.dim)
    with pytest.raises(ModelNotFound, match="unknown model 'openai/clip-vit-base-patch33'.*Did you mean 'openai/clip-vit-base-patch32'"):
        crossmodal.load_model("openai/clip-vit-base-patch33")
    assert issubclass(ImageDecodeError, crossmodal.CrossmodalError)


def test_skip_mode_reports_bad_items_and_keeps_good_vectors_in_order(tiny_model, tmp_path: Path, photos) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"garbage")
    items = [photos[0], corrupt, photos[1], tmp_path / "missing.jpg", photos[2]]
    result = tiny_model.embed_images(items, on_error="skip", batch_size=2)
    np.testing.assert_array_equal(result.indices, [0, 2, 4])
    assert [f.index for f in result.failures] == [1, 3]
    assert "corrupt.png" in result.failures[0].input and isinstance(result.failures[0].error, ImageDecodeError)
    assert np.abs(result.vectors - tiny_model.embed_images([photos[0], photos[1], photos[2]])).max() <= 1e-6
    texts = tiny_model.embed_texts(["a dog", "", "a cat", 7], on_error="skip")
    np.testing.assert_array_equal(texts.indices, [0, 2])
    assert [f.index for f in texts.failures] == [1, 3]
    assert np.abs(texts.vectors - tiny_model.embed_texts(["a dog", "a cat"])).max() <= 1e-6
    pairs = tiny_model.embed_pairs([photos[0], corrupt, photos[1]], ["a", "b", ""], on_error="skip")
    np.testing.assert_array_equal(pairs.indices, [0])
    assert [f.index for f in pairs.failures] == [1, 2]


def caption_finds_picture_hits(model) -> int:
    """Of 3 x 12 captions, each against 12 new pictures (one per caption), how many find their own first."""
    from crossmodal.testing.shapes import COLORS, SHAPES, caption, render

    captions = [caption(c, s) for c in COLORS for s in SHAPES]
    rng = np.random.default_rng(2024)
    hits = 0
    for _ in range(3):
        pictures = [render(c, s, size=64, rng=rng) for c in COLORS for s in SHAPES]
        sims = model.embed_texts(captions) @ model.embed_images(pictures).T
        hits += int((sims.argmax(axis=1) == np.arange(len(captions))).sum())
    return hits


def test_a_trained_tiny_clip_matches_captions_to_pictures(trained_model) -> None:
    """Text and image paths meet in one space: captions find their pictures far above chance (3 of 36).

    36 of 36 on all 20 models ``python -m tests.testing.spread`` trains (seeds and simulated CPUs).
    """
    assert caption_finds_picture_hits(trained_model) >= 30


def test_l2_normalize_equals_numpys_norm_bit_for_bit() -> None:
    from crossmodal.embedder import l2_normalize

    x = np.random.default_rng(0).standard_normal((50, 77)).astype(np.float32) * 3
    x[7] = 0  # an all-zero row stays zero
    expected = x / np.where((n := np.linalg.norm(x, axis=-1, keepdims=True)) == 0, 1, n)
    assert l2_normalize(x).tobytes() == expected.tobytes()
    assert l2_normalize(x[3]).tobytes() == expected[3].tobytes()
    assert l2_normalize(x.astype(np.float64)).dtype == np.float32
