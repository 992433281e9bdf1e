"""The same input gives the same vector alone or in a batch of 64, and bit-identical vectors in two processes.

Texts are batched 64 at a time by default (they are cheap). An image or a pair
is a 224-pixel EVA pass plus a 197-token text pass through the 31M-parameter
tiny Visualized-BGE, so the default run batches 4 pairs of differing text
lengths (image-only inputs run the same pair graph) and the 64 case is slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .inputs import M3_TEXTS, PAIR_TEXTS, PHOTOS, TEXTS

BATCH_ATOL = 1e-6


def _texts(n: int) -> list[str]:
    base = [t for t in TEXTS + M3_TEXTS if len(t) < 40]  # short texts of differing lengths: varied padding
    return [f"{base[i % len(base)]} {i}" for i in range(n)]


def test_visualized_text_alone_equals_in_a_batch_of_64(visualized) -> None:
    texts = _texts(64)
    batch = visualized.embed_texts(texts)
    singles = np.concatenate([visualized.embed_texts([t]) for t in texts[::9]])
    assert np.abs(batch[::9] - singles).max() <= BATCH_ATOL


def test_m3_outputs_alone_equal_in_a_batch_of_64(m3) -> None:
    texts = _texts(64)
    batch = m3.encode(texts, sparse=True, colbert=True)
    for i in range(0, 64, 9):
        one = m3.encode([texts[i]], sparse=True, colbert=True)
        assert np.abs(batch.dense[i] - one.dense[0]).max() <= BATCH_ATOL
        assert np.abs(batch.colbert[i] - one.colbert[0]).max() <= BATCH_ATOL
        assert np.array_equal(batch.sparse[i].indices, one.sparse[0].indices)
        assert np.abs(batch.sparse[i].values - one.sparse[0].values).max() <= BATCH_ATOL


def _pair_batch(visualized, n: int, singles: int) -> np.ndarray:
    images = [PHOTOS[i % len(PHOTOS)] for i in range(n)]
    texts = [f"{PAIR_TEXTS[i % len(PAIR_TEXTS)]} {'and more ' * (i % 5)}" for i in range(n)]  # varied padding
    batch = visualized.embed_pairs(images, texts)
    for i in range(singles):
        assert np.abs(batch[i] - visualized.embed_pairs([images[i]], [texts[i]])[0]).max() <= BATCH_ATOL
    return batch


def test_pairs_alone_equal_in_a_batch_of_4(visualized) -> None:
    _pair_batch(visualized, 4, singles=2)


@pytest.mark.slow
def test_images_and_pairs_alone_equal_in_a_batch_of_64(visualized) -> None:
    batch = _pair_batch(visualized, 64, singles=len(PHOTOS))
    images = [PHOTOS[i % len(PHOTOS)] for i in range(64)]
    batch_images = visualized.embed_images(images)
    for i in range(len(PHOTOS)):
        assert np.abs(batch_images[i] - visualized.embed_images([images[i]])[0]).max() <= BATCH_ATOL
    for i in range(len(PHOTOS), 64):  # the same image again, elsewhere in the batch
        assert np.abs(batch_images[i] - batch_images[i % len(PHOTOS)]).max() <= BATCH_ATOL
    assert batch.shape == (64, 768)


_SCRIPT = """
import json, sys
import numpy as np
from crossmodal.bge.onnx_run import load_visualized_onnx, load_m3_onnx
from crossmodal.bge.torch_graphs import load_visualized_encoder, load_m3_encoder
args = json.loads(sys.argv[1])
out = {}
for name, enc in (("torch", load_visualized_encoder(args["vis"])), ("onnx", load_visualized_onnx(args["vis_onnx"]))):
    out[name + ".text"] = enc.embed_texts(args["texts"])
    out[name + ".pair"] = enc.embed_pairs(args["images"], args["pair_texts"])
for name, enc in (("torch", load_m3_encoder(args["m3"])), ("onnx", load_m3_onnx(args["m3_onnx"]))):
    o = enc.encode(args["texts"], sparse=True, colbert=True)
    out[name + ".dense"] = o.dense
    out[name + ".colbert"] = np.concatenate(o.colbert)
    out[name + ".sparse"] = np.concatenate([s.values for s in o.sparse])
np.savez(args["out"], **out)
"""


def test_two_processes_give_bit_identical_vectors(visualized_dir: Path, visualized_onnx_dir: Path, m3_dir: Path,
                                                  m3_onnx_dir: Path, tmp_path: Path) -> None:
    procs, outs = [], []
    for i in range(2):
        out = tmp_path / f"run{i}.npz"
        args = {"vis": str(visualized_dir), "vis_onnx": str(visualized_onnx_dir), "m3": str(m3_dir),
                "m3_onnx": str(m3_onnx_dir), "texts": TEXTS[:4], "images": [str(PHOTOS[0])],
                "pair_texts": PAIR_TEXTS[:1], "out": str(out)}
        procs.append(subprocess.Popen([sys.executable, "-c", _SCRIPT, json.dumps(args)], stderr=subprocess.PIPE))
        outs.append(out)
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    first, second = (np.load(p) for p in outs)
    assert sorted(first.files) == sorted(second.files) and len(first.files) == 10
    for key in first.files:
        assert np.array_equal(first[key], second[key]), key


def test_length_sorted_chunks_cover_every_position_once_longest_first() -> None:
    from crossmodal.bge.encoders import length_sorted_chunks

    chunks = length_sorted_chunks([3, 9, 1, 9, 5], 2)
    assert [c.tolist() for c in chunks] == [[1, 3], [4, 0], [2]]


def test_batch_sizes_do_not_change_the_vectors(visualized_dir: Path, m3_dir: Path) -> None:
    """Length-sorted batches of 2 give the rows, in input order, of one batch of everything."""
    from crossmodal.bge.torch_graphs import load_m3_encoder, load_visualized_encoder

    texts = _texts(7)
    small = load_visualized_encoder(visualized_dir, batch_size=2, text_batch_size=2)
    large = load_visualized_encoder(visualized_dir, batch_size=64, text_batch_size=64)
    assert np.abs(small.embed_texts(texts) - large.embed_texts(texts)).max() <= BATCH_ATOL
    images, pair_texts = PHOTOS[:3], ["a", PAIR_TEXTS[0] + " and more" * 4, PAIR_TEXTS[1]]
    assert np.abs(small.embed_pairs(images, pair_texts) - large.embed_pairs(images, pair_texts)).max() <= BATCH_ATOL
    m3_small, m3_large = load_m3_encoder(m3_dir, batch_size=2), load_m3_encoder(m3_dir, batch_size=64)
    a, b = (m.encode(texts, sparse=True, colbert=True) for m in (m3_small, m3_large))
    assert np.abs(a.dense - b.dense).max() <= BATCH_ATOL
    for x, y in zip(a.colbert, b.colbert):
        assert x.shape == y.shape and np.abs(x - y).max() <= BATCH_ATOL
    assert all(np.array_equal(x.indices, y.indices) for x, y in zip(a.sparse, b.sparse))
