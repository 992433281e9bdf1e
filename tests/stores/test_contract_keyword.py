"""Keyword search, on every store (tests/stores/conftest.py STORES).

The items' vectors are random, so dense search cannot find what the tests look
for: only the keyword terms can. The expected sets come from the plain BM25 in
crossmodal.stores.keywords, never from the store under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.errors import ConfigError
from crossmodal.stores.keywords import bm25_scores, query_terms, record_terms
from crossmodal.testing.fake import fake_model

DIM = 16
FILLER = ["a photo of a dog on the beach", "two cats sleeping on a sofa", "a red car parked in the street",
          "a bowl of fruit on a table", "children playing football in a park", "a mountain lake at sunset"]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def corpus(store):
    model = fake_model(dim=DIM)
    col = store.collection("kw", model=model, text_keys=["title"])
    rng = np.random.default_rng(3)
    records = []
    for i in range(36):  # ordinary items of every modality, sharing common words
        modality = ("text", "image", "pair")[i % 3]
        text = FILLER[i % len(FILLER)] if modality != "image" else None
        ref = text if modality == "text" else f"photos/{2020 + i % 4}/img_{i:04d}.jpg"
        records.append(Record(f"filler-{i:02d}", modality, ref, text=text,
                              metadata={"album": str(2020 + i % 4), "title": "holiday"}))
    records += [
        Record("rare-text", "text", "notes about zanzibar spices", text="notes about zanzibar spices",
               metadata={"album": "2021"}),
        Record("named-file", "image", "trips/germany/IMG_2041-BerlinWall.jpg", metadata={"album": "2022"}),
        Record("caption", "pair", "photos/x/p1.jpg", text="an old lighthouse in the fog", metadata={"album": "2022"}),
        Record("chinese", "text", "我爱北京天安门", text="我爱北京天安门", metadata={"album": "2023"}),
        Record("titled", "image", "photos/y/dsc001.jpg", metadata={"album": "2023", "title": "Quixotic evening"}),
    ]
    vectors = unit(rng, len(records))
    records = [Record(r.id, r.modality, r.reference, v, text=r.text, metadata=r.metadata)
               for r, v in zip(records, vectors)]
    col.upsert(records)
    return col, records


@pytest.mark.parametrize(("query", "expected"), [
    ("zanzibar", "rare-text"), ("berlin", "named-file"), ("germany", "named-file"), ("BerlinWall", "named-file"),
    ("lighthouse", "caption"), ("北京", "chinese"), ("天安门", "chinese"), ("quixotic", "titled"),
])
def test_keyword_finds_the_literal_word_first_and_hybrid_in_the_top_3(corpus, query: str, expected: str) -> None:
    col, _ = corpus
    hits = col.search(query, using="keyword", top_k=5)
    assert hits and hits[0].id == expected
    assert hits[0].signals == {"keyword": hits[0].score} and hits[0].score > 0
    hybrid = col.search(query, using="hybrid", top_k=3)
    assert expected in [h.id for h in hybrid]
    found = next(h for h in hybrid if h.id == expected)
    assert "keyword" in found.signals


def test_keyword_returns_exactly_the_items_holding_a_term(corpus) -> None:
    col, records = corpus
    for query in ("beach dog", "cats", "img 2021", "fog spices", "天安"):
        terms = set(query_terms(query))
        expected = {r.id for r in records if terms & set(record_terms(r, ["title"]))}
        hits = col.search(query, using="keyword", top_k=100)
        assert {h.id for h in hits} == expected, query
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_keyword_applies_modality_and_metadata_filters(corpus) -> None:
    col, records = corpus
    assert col.search("zanzibar", using="keyword", modality="image") == []
    assert [h.id for h in col.search("lighthouse", using="keyword", modality="pair")] == ["caption"]
    assert col.search("berlin", using="keyword", where={"album": "2021"}) == []
    hits = col.search("photo img", using="keyword", where={"album": "2022"}, top_k=100)
    assert hits and all(h.metadata["album"] == "2022" for h in hits)
    hybrid = col.search("lighthouse", using="hybrid", where={"album": "2023"}, modality="text", top_k=50)
    assert hybrid and all(h.metadata["album"] == "2023" and h.modality == "text" for h in hybrid)


def test_keyword_index_follows_updates_and_deletes(corpus) -> None:
    col, records = corpus
    target = next(r for r in records if r.id == "rare-text")
    col.upsert(Record("rare-text", "text", "notes about pepper", target.vector, text="notes about pepper"))
    assert col.search("zanzibar", using="keyword") == []
    assert col.search("pepper", using="keyword")[0].id == "rare-text"
    col.upsert(Record("rare-text", "text", "notes about pepper", target.vector, text="notes about pepper",
                      metadata={"album": "2030"}))  # same vector, new metadata: updated in place
    assert col.search("pepper", using="keyword", where={"album": "2030"})[0].id == "rare-text"
    col.delete(["rare-text", "named-file"])
    assert col.search("pepper berlin", using="keyword") == []


def test_keyword_query_text_is_never_syntax(corpus) -> None:
    col, _ = corpus
    for query in ('a-b', 'foo:bar', 'cat AND', '"', 'NEAR(x y)', '*', '--', 'OR'):
        col.search(query, using="keyword")
    assert col.search("   ...  ", using="keyword") == []


def test_keyword_needs_a_text_query(corpus) -> None:
    col, records = corpus
    with pytest.raises(ConfigError, match="needs a text"):
        col.search(vector=records[0].vector, using="keyword")
    with pytest.raises(ConfigError, match="like="):
        col.search(like=records[0].id, using="hybrid")
    with pytest.raises(ConfigError, match="using must be one of"):
        col.search("x", using="bm25")


#: stores whose keyword scores are the plain BM25 of crossmodal.stores.keywords (FTS5 and Qdrant use their own IDF)
PLAIN_BM25 = {"memory", "pgvector"}


def test_keyword_scores_are_bm25(store_case, corpus) -> None:
    col, records = corpus
    for query in ("a photo of dog beach", "cats sofa img", "holiday quixotic"):
        terms = query_terms(query)
        reference = bm25_scores(terms, [record_terms(r, ["title"]) for r in records])
        expected = sorted(((r.id, s) for r, s in zip(records, reference) if s > 0), key=lambda t: (-t[1], t[0]))
        hits = col.search(query, using="keyword", top_k=len(records))
        assert {h.id for h in hits} == {i for i, _ in expected}
        if store_case.name in PLAIN_BM25:
            assert [h.id for h in hits] == [i for i, _ in expected]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-9)
