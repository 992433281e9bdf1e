"""Sparse search and multi-vector reranking, against brute force in numpy (on the stores that keep them)."""

from __future__ import annotations

import numpy as np
import pytest

import crossmodal
from crossmodal import Record
from crossmodal.errors import ConfigError
from crossmodal.retrieval import fuse
from crossmodal.retrieval.tokens import maxsim
from crossmodal.testing.fake import fake_model
from crossmodal.testing.fake_tokens import fake_token_model, word_sparse, word_vectors

WORDS = "cat dog bird fish red blue green small big old new sea sky tree road house".split()


@pytest.fixture(params=["memory", "embedded"])
def store(request, tmp_path):
    st = crossmodal.open_store("memory://" if request.param == "memory" else tmp_path / "store")
    yield st
    st.close()


@pytest.fixture
def filled(store):
    model = fake_token_model(dim=16, token_dim=8)
    col = store.collection("tok", model=model)
    rng = np.random.default_rng(5)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 7)))) for _ in range(60)]
    col.add_texts(texts, metadata=[{"n": i} for i in range(60)])
    return col, model, texts


def brute_sparse(col, query: dict[int, float], keep=lambda r: True) -> list[tuple[str, float]]:
    scored = []
    for r in col.items(vectors=True):
        if keep(r) and r.sparse:
            s = sum(w * r.sparse[i] for i, w in query.items() if i in r.sparse)
            if s > 0:
                scored.append((r.id, s))
    return sorted(scored, key=lambda t: (-t[1], t[0]))


def test_items_keep_their_sparse_vector_and_float16_multivector(filled) -> None:
    col, _, texts = filled
    r = next(x for x in col.items(vectors=True) if x.text == texts[0])
    assert r.sparse == pytest.approx(word_sparse(texts[0]))
    np.testing.assert_array_equal(r.multivector, word_vectors(texts[0], 8).astype(np.float16))


def test_sparse_search_equals_a_brute_force_dot_product(filled) -> None:
    col, _, _ = filled
    for query in ("cat sea", "red red tree", "house"):
        q = word_sparse(query)
        expected = brute_sparse(col, q)[:10]
        hits = col.search(query, using="sparse", top_k=10)
        assert [h.id for h in hits] == [i for i, _ in expected]
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-6)
        assert all(h.signals == {"sparse": h.score} for h in hits)
    where = {"n": {"$lt": 20}}
    expected = brute_sparse(col, word_sparse("cat"), keep=lambda r: r.metadata["n"] < 20)
    assert [h.id for h in col.search("cat", using="sparse", where=where, top_k=100)] == [i for i, _ in expected]


def test_multivector_rerank_equals_numpy_maxsim(filled) -> None:
    col, _, _ = filled
    query = "big blue sea"
    first = col.search(query, using="keyword", top_k=50)
    q = word_vectors(query, 8)
    stored = {r.id: r.multivector for r in col.items(vectors=True)}
    expected = sorted(((h.id, float(np.mean(np.max(q @ stored[h.id].astype(np.float32).T, axis=1))))
                       for h in first), key=lambda t: (-t[1], t[0]))[:5]
    hits = col.search(query, using="keyword", rerank="multivector", top_k=5)
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-6)
    assert all(set(h.signals) == {"keyword", "multivector"} for h in hits)
    assert maxsim(q, stored[hits[0].id]) == pytest.approx(hits[0].score)


def test_hybrid_fuses_dense_keyword_and_sparse_by_rrf(filled) -> None:
    col, _, _ = filled
    query = "old road"
    n = 50
    lists = {"dense": col.search(query, top_k=n), "keyword": col.search(query, using="keyword", top_k=n),
             "sparse": col.search(query, using="sparse", top_k=n)}
    expected = fuse({k: [(h.id, h.score) for h in v] for k, v in lists.items()})[:10]
    hits = col.search(query, using="hybrid", top_k=10)
    assert [(h.id, round(h.score, 12)) for h in hits] == [(i, round(s, 12)) for i, s in expected]
    assert any("sparse" in h.signals for h in hits)


def test_without_token_outputs_sparse_and_rerank_say_why(store) -> None:
    col = store.collection("plain", model=fake_model(dim=16))
    col.upsert([Record("a", "text", "a cat", np.eye(16, dtype=np.float32)[0], text="a cat")])
    with pytest.raises(ConfigError, match="sparse output"):
        col.search("cat", using="sparse")
    with pytest.raises(ConfigError, match="multi-vector output"):
        col.search("cat", rerank="multivector")
    with pytest.raises(ConfigError, match="rerank must be"):
        col.search("cat", rerank="colbert")
    assert [h.id for h in col.search("cat", using="hybrid")] == ["a"]  # dense + keyword only


def test_a_qdrant_collection_from_before_token_vectors_refuses_sparse_search_by_name() -> None:
    pytest.importorskip("qdrant_client")
    st = crossmodal.open_store("qdrant+local://:memory:")
    st.collection("q", model=fake_model(dim=16))
    st.backend.registry.update("q", tokens=False)  # what a collection created by an earlier crossmodal records
    col = st.collection("q", model=fake_token_model(dim=16))
    col.add_texts(["a cat on a mat"])  # stored with dense and keyword search
    assert col.search("cat", using="keyword")[0].text == "a cat on a mat"
    with pytest.raises(ConfigError, match="copy it into a new collection"):
        col.search("cat", using="sparse")
    st.close()


def test_store_check_removes_token_vectors_of_items_that_are_gone(tmp_path) -> None:
    st = crossmodal.open_store(tmp_path / "store")
    col = st.collection("tok", model=fake_token_model(dim=16))
    col.add_texts(["a cat", "a dog"])
    with col.backend.db.write() as conn:  # what a bug or a hand edit could leave
        conn.execute("INSERT INTO sparse VALUES (99999, ?, 1, 0.5)", (col.backend.cid,))
    report = st.check(repair=False)
    assert not report.clean and any("sparse" in p for p in report.problems)
    assert st.check().repairs and st.check().clean
    assert [h.text for h in col.search("cat", using="sparse")] == ["a cat"]
    st.close()


def test_ingested_texts_keep_their_token_vectors_when_moved_or_given_new_metadata(tmp_path) -> None:
    from crossmodal.ingest import ingest

    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("a red road by the sea")
    (folder / "b.txt").write_text("an old tree")
    st = crossmodal.open_store(tmp_path / "store")
    model = fake_token_model(dim=16)
    col = st.collection("files", model=model)
    ingest(col, [folder], workers=0)

    def tokens():
        return {r.text: (r.sparse, None if r.multivector is None else r.multivector.tobytes())
                for r in col.items(vectors=True)}

    before = tokens()
    assert before["an old tree"][0] == pytest.approx(word_sparse("an old tree"))
    assert before["a red road by the sea"][1] == word_vectors("a red road by the sea", 8).astype(np.float16).tobytes()
    (folder / "a.txt").rename(folder / "moved.txt")  # a move: the item is stored anew without embedding
    (folder / "meta.jsonl").write_text('{"file": "b.txt", "tag": "x"}\n')  # new metadata: the same
    report = ingest(col, [folder], workers=0, metadata=folder / "meta.jsonl", prune=True)
    assert report.moved == 1 and report.updated == 1 and report.added == 0
    assert tokens() == before
    assert [h.text for h in col.search("sea road", using="sparse")] == ["a red road by the sea"]
    st.close()


@pytest.mark.parametrize(("damage", "says"), [
    ("INSERT INTO sparse SELECT key, cid, idx, w FROM sparse WHERE key = (SELECT min(key) FROM sparse)",
     "repeat a token"),
    ("UPDATE sparse SET w = -1 WHERE rowid = (SELECT min(rowid) FROM sparse)", "not a positive number"),
    ("UPDATE multivec SET data = x'00' WHERE key = (SELECT min(key) FROM multivec)", "do not match their shape"),
    ("DELETE FROM kw_{cid} WHERE rowid = (SELECT min(key) FROM items)", "keyword index"),
])
def test_store_check_finds_and_repairs_damaged_sparse_and_keyword_indexes(tmp_path, damage, says) -> None:
    st = crossmodal.open_store(tmp_path / "store")
    model = fake_token_model(dim=16)
    col = st.collection("tok", model=model)
    col.add_texts(["a cat on a mat", "a dog in the fog", "a cat and a dog"])
    before = {u: [(h.id, round(h.score, 9)) for h in col.search("cat dog fog", using=u)] for u in ("sparse", "keyword")}
    with col.backend.db.write() as conn:  # what a bug, a hand edit or a damaged file could leave
        conn.execute(damage.format(cid=col.backend.cid))
    report = st.check(repair=False)
    assert not report.clean and any(says in p for p in report.problems), report.problems
    assert report.unresolved
    fixed = st.check()
    assert fixed.repairs and st.check().clean
    kept = {r.id for r in col.items(vectors=True) if r.multivector is not None}
    for using, hits in before.items():
        got = [(h.id, round(h.score, 9)) for h in col.search("cat dog fog", using=using)]
        if says != "not a positive number" or using == "keyword":
            assert got == hits
    assert len(kept) == (2 if "shape" in says else 3)
    assert col.search("cat", using="keyword", rerank="multivector")[0].signals
    st.close()


def test_the_unfiltered_fast_path_ranks_ties_like_the_filtered_one(tmp_path) -> None:
    """The embedded store joins only the items at or above the k-th score when nothing is filtered; with many ties
    (few words, repeated) it must return what the general query does with a filter that keeps everything."""
    rng = np.random.default_rng(2)
    st = crossmodal.open_store(tmp_path / "store")
    col = st.collection("t", model=fake_token_model(dim=16))
    col.add_texts([" ".join(rng.choice(WORDS[:6], size=int(rng.integers(1, 4)))) + f" z{i}" for i in range(300)])
    for query in ("cat", "dog bird", "red", "fish blue cat"):
        for k in (1, 2, 3, 10, 40):
            for using in ("keyword", "sparse"):
                fast = [(h.id, h.score) for h in col.search(query, using=using, top_k=k)]
                general = [(h.id, h.score) for h in col.search(query, using=using, top_k=k,
                                                               modality=["image", "pair", "text"])]
                assert fast == general and len(fast) == k, (query, k, using)
    st.close()
