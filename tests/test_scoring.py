"""compute_score equals BGE-M3's compute_score, worked out by hand with numpy on the library's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.embedder import TextEmbeddings
from crossmodal.errors import ConfigError
from crossmodal.runtimes.base import SparseVector
from crossmodal.scoring import SCORES, compute_score
from crossmodal.testing.outputs_family import build_outputs_model, outputs_registry


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def random_outputs(rng: np.random.Generator, n: int, dim: int = 8, vocab: int = 30) -> TextEmbeddings:
    sparse = []
    for _ in range(n):
        ids = np.sort(rng.choice(vocab, size=int(rng.integers(0, 8)), replace=False)).astype(np.int64)
        sparse.append(SparseVector(ids, rng.uniform(0.01, 1.0, len(ids)).astype(np.float32)))
    multi = [unit(rng.standard_normal((int(rng.integers(1, 7)), 5))) for _ in range(n)]
    return TextEmbeddings(unit(rng.standard_normal((n, dim))), sparse, multi)


def by_hand(q: TextEmbeddings, p: TextEmbeddings, w: tuple[float, float, float]) -> dict[str, list[float]]:
    """Each score from its definition, one pair at a time, in float64."""
    out: dict[str, list[float]] = {name: [] for name in SCORES}
    assert q.sparse and p.sparse and q.multivector and p.multivector
    for i in range(len(q.dense)):
        dense = float(np.dot(q.dense[i].astype(np.float64), p.dense[i]))
        qw, pw = q.sparse[i].as_dict(), p.sparse[i].as_dict()
        sparse = sum(qw[t] * pw[t] for t in qw if t in pw)
        sims = q.multivector[i].astype(np.float64) @ p.multivector[i].astype(np.float64).T
        colbert = float(np.mean([max(row) for row in sims]))
        out["dense"].append(dense)
        out["sparse"].append(sparse)
        out["colbert"].append(colbert)
        out["sparse+dense"].append((w[0] * dense + w[1] * sparse) / (w[0] + w[1]))
        out["colbert+sparse+dense"].append((w[0] * dense + w[1] * sparse + w[2] * colbert) / sum(w))
    return out


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0), (0.4, 0.2, 0.4), (1.0, 0.0, 0.0), (0.0, 1.0, 3.0)])
def test_scores_equal_the_definitions(weights: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(7)
    q, p = random_outputs(rng, 12), random_outputs(rng, 12)
    got = compute_score(q, p, weights=weights)
    want = by_hand(q, p, weights)
    assert list(got) == list(SCORES)
    for name in SCORES:
        assert got[name].dtype == np.float32 and got[name].shape == (12,)
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
    # a pair with no shared ids has lexical score 0
    assert any(v == 0.0 for v in got["sparse"])


def test_on_a_models_outputs(tmp_path: Path) -> None:
    model = crossmodal.load_model(build_outputs_model(tmp_path / "m", seed=3), families=outputs_registry())
    queries = ["red circle", "a cat", "一条 龙"]
    passages = ["a red red circle and a square", "two dogs", "龙 龙 in the sky"]
    q = model.embed_text_outputs(queries, outputs=("sparse", "multivector"))
    p = model.embed_text_outputs(passages, outputs=("sparse", "multivector"))
    got = compute_score(q, p)
    want = by_hand(q, p, (1.0, 1.0, 1.0))
    for name in SCORES:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6, err_msg=name)
    # word counts: "red" (1 x 2) + "circle" (1 x 1); nothing shared; "龙" (1 x 2)
    np.testing.assert_allclose(got["sparse"], [3.0, 0.0, 2.0])
    # a query whose tokens all appear in the passage has MaxSim 1 (unit token vectors)
    assert got["colbert"][0] == pytest.approx(1.0, abs=1e-6)


def test_refusals() -> None:
    rng = np.random.default_rng(0)
    q, p = random_outputs(rng, 2), random_outputs(rng, 3)
    with pytest.raises(ConfigError, match="2 queries but 3 passages"):
        compute_score(q, p)
    with pytest.raises(ConfigError, match="outputs of the passages; embed them with model.embed_text_outputs"):
        compute_score(q, TextEmbeddings(p.dense[:2], p.sparse[:2] if p.sparse else None, None))
    with pytest.raises(ConfigError, match="weights must be three numbers"):
        compute_score(q, random_outputs(rng, 2), weights=(1.0, 1.0))
    with pytest.raises(ConfigError, match="weights must be three numbers"):
        compute_score(q, random_outputs(rng, 2), weights=("a", 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="have 8 dimensions, the passages' 4"):
        compute_score(q, random_outputs(rng, 2, dim=4))
