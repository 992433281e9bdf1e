"""BGE-M3's extra outputs and Visualized-BGE's fused pairs through the product's surfaces.

The CLI's ``--output``, ``/v1/embeddings``' ``crossmodal.outputs``,
:func:`crossmodal.scoring.compute_score` (against the reference's own
``compute_score``) and a collection's pair rule, on the seeded checkpoints of
tests/bge/conftest.py, loaded from their ONNX exports as users load them.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import crossmodal
from crossmodal.cli.main import cli
from crossmodal.errors import SpaceMismatch
from crossmodal.scoring import SCORES, compute_score
from crossmodal.space import PairRule

from .inputs import M3_PAIRS, M3_WEIGHTS, PAIR_TEXTS, PHOTOS

ATOL = 1e-5
TEXTS = ["a photo of a cat", "一只黑猫睡在椅子上。", "the the the cat the"]


@pytest.fixture(scope="module")
def m3(m3_onnx_dir: Path) -> crossmodal.Model:
    return crossmodal.load_model(m3_onnx_dir)


@pytest.fixture(scope="module")
def visualized(visualized_onnx_dir: Path) -> crossmodal.Model:
    return crossmodal.load_model(visualized_onnx_dir)


def test_compute_score_equals_the_references(m3: crossmodal.Model, m3_reference) -> None:
    queries = m3.embed_text_outputs([q for q, _ in M3_PAIRS], outputs=("sparse", "multivector"))
    passages = m3.embed_text_outputs([p for _, p in M3_PAIRS], outputs=("sparse", "multivector"))
    for name, weights in (("score", (1.0, 1.0, 1.0)), ("score_weighted", tuple(M3_WEIGHTS))):
        scores = compute_score(queries, passages, weights=weights)
        for key in SCORES:
            assert np.abs(scores[key] - np.asarray(m3_reference[f"{name}.{key}"])).max() <= ATOL, (name, key)


def test_the_cli_writes_m3s_sparse_and_multivector_outputs(m3: crossmodal.Model, m3_onnx_dir: Path,
                                                            tmp_path: Path) -> None:
    env = {"CROSSMODAL_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    args = ["embed", "--model", str(m3_onnx_dir), *[a for t in TEXTS for a in ("--text", t)]]
    sparse = m3.embed_texts(TEXTS, output="sparse")
    multi = m3.embed_texts(TEXTS, output="multivector")
    result = CliRunner().invoke(cli, [*args, "--output", "sparse"], env=env)
    assert result.exit_code == 0, result.output
    for item, want in zip(json.loads(result.stdout)["data"], sparse):
        assert item["sparse"]["indices"] == want.indices.tolist()
        np.testing.assert_array_equal(np.float32(item["sparse"]["values"]), want.values)
    result = CliRunner().invoke(cli, [*args, "--output", "multivector", "--format", "npy"], env=env)
    assert result.exit_code == 0, result.output
    with np.load(io.BytesIO(result.stdout_bytes)) as npz:
        offsets = npz["offsets"]
        for i, want in enumerate(multi):
            np.testing.assert_array_equal(npz["vectors"][offsets[i]:offsets[i + 1]], want)


def test_v1_embeddings_gives_m3s_outputs(m3: crossmodal.Model) -> None:
    pytest.importorskip("fastapi")
    from ..server.helpers import client_for

    with client_for(m3) as client:
        body = client.post("/v1/embeddings", json={"input": TEXTS,
                                                   "crossmodal": {"outputs": ["sparse", "multivector"]}}).json()
    sparse = m3.embed_texts(TEXTS, output="sparse")
    multi = m3.embed_texts(TEXTS, output="multivector")
    for item, s, mv in zip(body["data"], sparse, multi):
        assert item["sparse"]["indices"] == s.indices.tolist()
        np.testing.assert_allclose(np.float32(item["multivector"]), mv, atol=1e-7)


def test_visualized_collections_make_and_keep_pairs_by_its_fused_encoder(visualized: crossmodal.Model,
                                                                         tmp_path: Path) -> None:
    assert visualized.space.pairs == PairRule("graph", None)
    store = crossmodal.open_store(tmp_path / "store")
    try:
        col = store.collection("vis", model=visualized)
        col.add_pairs(PHOTOS[:2], PAIR_TEXTS[:2], ids=["a", "b"])
        want = visualized.embed_pairs(PHOTOS[:2], PAIR_TEXTS[:2])
        got = np.stack([r.vector for r in col.get_many(["a", "b"], vectors=True)])
        assert np.abs(got - want).max() <= 1e-6
        assert col.search(pair=(PHOTOS[1], PAIR_TEXTS[1]), top_k=1)[0].id == "b"
        # the same weights composing pairs as a weighted sum instead (its space says so): refused
        summed = crossmodal.load_model(visualized.resolved.files.root)
        summed.space = replace(visualized.space, pairs=PairRule())
        with pytest.raises(SpaceMismatch, match="pairs made by the model's fused pair encoder"):
            store.collection("vis", model=summed)
    finally:
        store.close()
