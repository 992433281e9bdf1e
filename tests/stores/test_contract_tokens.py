"""Sparse search and multi-vector reranking, on every store (tests/stores/conftest.py STORES).

The expected results are computed here, in plain Python and numpy, from the sparse vectors and multi-vectors each
store hands back (``items(vectors=True)``): a brute-force dot product over every selected item, and MaxSim as
BGE-M3 defines it (the mean over query rows of the best dot product). Scores are compared to 1e-5 (pgvector and
Qdrant keep weights as float32); ids exactly, except that items tied within 1e-5 may come in either order.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.errors import ConfigError
from crossmodal.retrieval.tokens import with_token_vectors
from crossmodal.testing.fake import fake_model
from crossmodal.testing.fake_tokens import fake_token_model, word_sparse, word_vectors

DIM, TOKEN_DIM = 16, 8
WORDS = "cat dog bird fish red blue green small big old new sea sky tree road house".split()
TOL = 1e-5


@pytest.fixture
def filled(store):
    model = fake_token_model(dim=DIM, token_dim=TOKEN_DIM)
    col = store.collection("tok", model=model)
    rng = np.random.default_rng(5)
    records = []
    for i in range(60):
        modality = ("text", "pair", "image")[i % 3]
        text = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 7)))) if modality != "image" else None
        ref = text if modality == "text" else f"photos/img_{i:03d}.jpg"
        v = rng.standard_normal(DIM).astype(np.float32)
        records.append(Record(f"item-{i:02d}", modality, ref, v / np.linalg.norm(v), text=text,
                              metadata={"n": i, "album": ("a", "b")[i % 2]}))
    col.upsert(with_token_vectors(model, records))
    return col


def brute_sparse(col, query: dict[int, float], **where) -> list[tuple[str, float]]:
    scored = []
    for r in col.items(vectors=True, **where):
        if r.sparse:
            s = sum(w * r.sparse[i] for i, w in query.items() if i in r.sparse)
            if s > 0:
                scored.append((r.id, s))
    return sorted(scored, key=lambda t: (-t[1], t[0]))


def assert_same_ranking(got: list[tuple[str, float]], expected: list[tuple[str, float]], top_k: int) -> None:
    """``got`` is the first ``top_k`` of ``expected`` (scores within TOL; tied items in any order)."""
    want = expected[:top_k]
    assert len(got) == len(want)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=TOL)
    for pos, (item, score) in enumerate(got):
        tied = {i for i, s in expected if abs(s - score) <= TOL}
        assert item == want[pos][0] or item in tied, (pos, item, want[pos])
    assert len({i for i, _ in got}) == len(got)


def test_items_keep_their_sparse_vector_and_multivector(filled) -> None:
    texts = {r.id: r for r in filled.items(vectors=True) if r.text}
    assert len(texts) == 40
    for r in texts.values():
        assert set(r.sparse) == set(word_sparse(r.text))
        assert [r.sparse[i] for i in sorted(r.sparse)] == pytest.approx(
            [word_sparse(r.text)[i] for i in sorted(r.sparse)], abs=1e-6)
        np.testing.assert_array_equal(np.asarray(r.multivector, np.float16),
                                      word_vectors(r.text, TOKEN_DIM).astype(np.float16))
    assert all(r.sparse is None and r.multivector is None for r in filled.items(vectors=True, modality="image"))


@pytest.mark.parametrize("query", ["cat sea", "red red tree", "house", "big old road sky"])
def test_sparse_search_equals_a_brute_force_dot_product(filled, query: str) -> None:
    q = word_sparse(query)
    hits = filled.search(query, using="sparse", top_k=10)
    assert_same_ranking([(h.id, h.score) for h in hits], brute_sparse(filled, q), 10)
    assert all(h.signals == {"sparse": h.score} for h in hits)


@pytest.mark.parametrize(("modality", "where"), [
    ("text", None), ("pair", {"album": "b"}), (None, {"n": {"$lt": 20}}), (["text", "pair"], {"n": {"$gte": 30}}),
])
def test_sparse_search_applies_modality_and_metadata_filters(filled, modality, where) -> None:
    for query in ("cat", "blue green fish"):
        expected = brute_sparse(filled, word_sparse(query), modality=modality, where=where)
        assert expected, query
        hits = filled.search(query, using="sparse", modality=modality, where=where, top_k=100)
        assert_same_ranking([(h.id, h.score) for h in hits], expected, 100)


@pytest.mark.parametrize(("using", "modality", "where"), [
    ("keyword", None, None), ("sparse", None, None), ("hybrid", "pair", None), ("keyword", None, {"album": "a"}),
])
def test_multivector_rerank_equals_numpy_maxsim(filled, using, modality, where) -> None:
    query = "big blue sea"
    first = filled.search(query, using=using, modality=modality, where=where, top_k=50)
    assert first
    q = word_vectors(query, TOKEN_DIM)
    stored = {r.id: np.asarray(r.multivector, np.float32) for r in filled.items(vectors=True) if r.text}
    expected = sorted(((h.id, float(np.mean(np.max(q @ stored[h.id].T, axis=1)))) for h in first),
                      key=lambda t: (-t[1], t[0]))
    hits = filled.search(query, using=using, modality=modality, where=where, rerank="multivector", top_k=5)
    assert_same_ranking([(h.id, h.score) for h in hits], expected, 5)
    assert all("multivector" in h.signals and h.signals["multivector"] == h.score for h in hits)
    if modality is not None:
        assert {h.modality for h in hits} == {modality}
    if where is not None:
        assert {h.metadata["album"] for h in hits} == {"a"}


def test_hybrid_includes_the_sparse_signal(filled) -> None:
    hits = filled.search("old road", using="hybrid", top_k=10)
    assert any("sparse" in h.signals for h in hits)
    sparse = {h.id: h.score for h in filled.search("old road", using="sparse", top_k=200)}
    for h in hits:
        if "sparse" in h.signals:
            assert h.signals["sparse"] == pytest.approx(sparse[h.id], abs=TOL)


def test_deleted_and_replaced_items_leave_the_sparse_index(filled) -> None:
    victim = filled.search("cat", using="sparse", top_k=1)[0]
    filled.delete([victim.id])
    assert victim.id not in {h.id for h in filled.search("cat", using="sparse", top_k=100)}
    model = filled.model
    r = Record("new", "text", "zebra cat", np.eye(DIM, dtype=np.float32)[0], text="zebra cat")
    filled.upsert(with_token_vectors(model, [r]))
    assert filled.search("zebra", using="sparse", top_k=3)[0].id == "new"
    filled.upsert(with_token_vectors(model, [Record("new", "text", "lion", r.vector, text="lion")]))
    assert "new" not in {h.id for h in filled.search("zebra cat", using="sparse", top_k=100)}
    assert filled.search("lion", using="sparse", top_k=3)[0].id == "new"
    moved = Record("moved", "text", "lion", r.vector, text="lion")  # a move: the new item in, the old out, at once
    filled.upsert(with_token_vectors(model, [moved]), delete=["new"])
    assert [h.id for h in filled.search("lion", using="sparse", top_k=3)] == ["moved"]
    assert filled.search("lion", using="sparse", rerank="multivector", top_k=1)[0].signals["multivector"] > 0.99


def test_a_model_without_token_outputs_says_why(store) -> None:
    col = store.collection("plain", model=fake_model(dim=DIM))
    col.upsert([Record("a", "text", "a cat", np.eye(DIM, dtype=np.float32)[0], text="a cat")])
    with pytest.raises(ConfigError, match="sparse output"):
        col.search("cat", using="sparse")
    with pytest.raises(ConfigError, match="multi-vector output"):
        col.search("cat", rerank="multivector")
    assert [h.id for h in col.search("cat", using="hybrid")] == ["a"]
