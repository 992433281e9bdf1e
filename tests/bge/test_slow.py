"""Slow BGE checks: the Visualized-BGE "m3" variant (XLM-R + EVA02-CLIP-L-14), and what the reference does
with a missing M3 head file.

The m3 variant keeps the real widths (1024, so that EVA-L tokens fit XLM-R's
embedding space) and cuts the depth to 2 + 2: 63M parameters, a 254 MB
``.pth``, about 30 s to build and a minute for the reference on a loaded
two-core machine; too heavy for every run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ..reference.bge_reference import m3_task, run, visualized_task
from .inputs import M3_TEXTS, PAIR_TEXTS, PHOTOS, TEXTS

pytestmark = pytest.mark.slow

ATOL = 1e-5


@pytest.fixture(scope="module")
def m3_variant_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crossmodal.testing.bge import build_visualized

    return build_visualized(tmp_path_factory.mktemp("visualized-m3"), variant="m3", seed=0)


def test_m3_variant_equals_the_reference_on_both_runtimes(m3_variant_dir: Path, reference_env, tmp_path: Path) -> None:
    from crossmodal.bge.onnx_export import export_visualized
    from crossmodal.bge.onnx_run import load_visualized_onnx
    from crossmodal.bge.torch_graphs import load_visualized_encoder
    from crossmodal.bge.visualized import load_visualized

    images, texts = [str(p) for p in PHOTOS[:2]], PAIR_TEXTS[:2]
    [ref] = run([visualized_task(m3_variant_dir, [
        {"name": "text", "op": "text", "texts": TEXTS},
        {"name": "image", "op": "image", "images": images},
        {"name": "pair", "op": "pair", "images": images, "texts": texts},
        {"name": "pair_batch", "op": "pair_batch", "images": images, "texts": texts},
        {"name": "tokens", "op": "tokenize", "texts": [*TEXTS, ""]},
    ], variant="m3")], env=reference_env)
    torch_enc = load_visualized_encoder(m3_variant_dir)
    assert torch_enc.limits.image_tokens == 256 and torch_enc.limits.max_pair_tokens == 8194 - 256
    onnx_dir = export_visualized(load_visualized(m3_variant_dir), m3_variant_dir, tmp_path / "onnx")
    for enc in (torch_enc, load_visualized_onnx(onnx_dir)):
        assert [enc.tokenizer.ids(t) for t in [*TEXTS, ""]] == ref.meta["tokens"]
        assert np.abs(enc.embed_texts(TEXTS) - ref["text"]).max() <= ATOL
        assert np.abs(enc.embed_images(images) - ref["image"]).max() <= ATOL
        pairs = enc.embed_pairs(images, texts)
        assert np.abs(pairs - ref["pair"]).max() <= ATOL
        assert np.abs(pairs - ref["pair_batch"]).max() <= ATOL


def test_reference_uses_random_heads_when_a_head_file_is_missing(m3_dir: Path, reference_env, tmp_path: Path) -> None:
    """BGEM3FlagModel only logs when ``sparse_linear.pt`` is missing, and then initializes *both* heads at random
    (crossmodal refuses: tests/bge/test_errors.py)."""
    root = tmp_path / "m3"
    shutil.copytree(m3_dir, root)
    (root / "sparse_linear.pt").unlink()
    call = {"name": "all", "op": "encode", "texts": M3_TEXTS[:3], "max_length": 128, "sparse": True, "colbert": True}
    [full] = run([m3_task(m3_dir, [call])], env=reference_env)
    [broken] = run([m3_task(root, [call])], env=reference_env)
    assert any("new initialize" in line for line in broken.meta["load_log"])
    assert np.array_equal(full["all.dense"], broken["all.dense"])
    assert np.abs(full["all.colbert.0"] - broken["all.colbert.0"]).max() > 0.1  # colbert_linear.pt was ignored


def test_reference_compute_score_colbert_depends_on_the_batch(m3_dir: Path, reference_env, tmp_path: Path) -> None:
    """``compute_score`` pads a batch's passages with zero ColBERT vectors, and MaxSim takes them: a query token
    whose real best match is negative scores 0 instead whenever a longer passage shares the batch.

    crossmodal's MaxSim (like the reference's own ``colbert_score``) uses the real vectors only, so it equals the
    reference's ``compute_score(..., batch_size=1)``. The effect needs negative token similarities, so the ColBERT
    head here projects out the hidden states' mean direction (the seeded tiny model's vectors are all alike).
    """
    import torch

    from crossmodal.bge.m3 import load_m3
    from crossmodal.bge.m3_outputs import colbert_score
    from crossmodal.bge.torch_graphs import load_m3_encoder
    from crossmodal.testing.bge import ENGLISH

    root = tmp_path / "m3"
    shutil.copytree(m3_dir, root)
    model = load_m3(root)
    batch = load_m3_encoder(root).tokenizer.encode(list(ENGLISH), max_tokens=128)
    with torch.no_grad():
        hidden = model.hidden_states(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
    mean = hidden[torch.from_numpy(batch.attention_mask).bool()].mean(0)
    rotation = torch.randn(64, 64, generator=torch.Generator().manual_seed(5))
    weight = rotation @ (torch.eye(64) - torch.outer(mean, mean) / mean.dot(mean))
    torch.save({"weight": weight, "bias": torch.zeros(64)}, root / "colbert_linear.pt")
    enc = load_m3_encoder(root)
    words = sorted({w.strip(".,!?").lower() for t in ENGLISH for w in t.split()})
    vecs = dict(zip(words, enc.encode(words, dense=False, colbert=True).colbert))
    query, passage = min(((q, p) for q in words for p in words), key=lambda qp: (vecs[qp[0]] @ vecs[qp[1]].T).max(1).min())
    assert (vecs[query] @ vecs[passage].T).max(1).min() < 0
    pairs = [[query, passage], ["two dogs in the snow", " ".join(ENGLISH[:3])]]
    [ref] = run([m3_task(root, [
        {"name": "batched", "op": "score", "pairs": pairs, "max_length": 128},
        {"name": "alone", "op": "score", "pairs": pairs, "max_length": 128, "batch_size": 1},
    ])], env=reference_env)
    ours = colbert_score(vecs[query], vecs[passage])
    assert abs(ours - float(ref["alone.colbert"][0])) <= ATOL
    assert float(ref["batched.colbert"][0]) > ours + 0.01  # the padding's zero vectors won
    assert abs(float(ref["batched.colbert"][1]) - float(ref["alone.colbert"][1])) <= ATOL  # the longest is unpadded
