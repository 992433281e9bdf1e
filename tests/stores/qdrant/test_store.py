"""The Qdrant store: local mode always, and a real server when CROSSMODAL_TEST_QDRANT_URL is set.

The shared contract (test_contract.py) covers what every store does; these
tests cover what is Qdrant's own: point ids, the registry, the filter view
and the filters Qdrant cannot decide alone (string ranges, integers beyond a
float), payload indexes, leftovers of interrupted creates and drops, and the
local mode's one-process lock.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal import Record
from crossmodal.errors import ConfigError, StoreUnavailable
from crossmodal.stores.base import Selection
from crossmodal.stores.filters import matches, parse_where
from crossmodal.stores.qdrant import NAMESPACE, point_id
from crossmodal.stores.qdrant.filters import translate
from crossmodal.testing.fake import fake_model

from .. import filter_cases
from ..servers import open_qdrant_local, open_qdrant_server, qdrant_server_url

KINDS = ["local", "server"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path):
    st = open_qdrant_local(tmp_path) if request.param == "local" else open_qdrant_server(tmp_path)
    yield st
    st.close()


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_points_are_uuid5_of_the_item_ids(store) -> None:
    col = store.collection("c", model=fake_model(dim=8))
    col.upsert([Record("photo-1", "image", "a.jpg", np.ones(8, dtype=np.float32)),
                Record("ид 🐉", "text", "x", np.ones(8, dtype=np.float32))])
    client, qname = store.backend.client, col.backend.qname
    stored = {p.id: p.payload["id"] for p in client.scroll(qname, limit=10)[0]}
    assert stored == {str(uuid.uuid5(NAMESPACE, "photo-1")): "photo-1", str(uuid.uuid5(NAMESPACE, "ид 🐉")): "ид 🐉"}
    assert point_id("photo-1") == str(uuid.uuid5(NAMESPACE, "photo-1"))
    col.upsert([Record("photo-1", "image", "b.jpg", np.ones(8, dtype=np.float32))])  # same point, replaced
    assert client.count(qname).count == 2 and col.get("photo-1").reference == "b.jpg"


def test_one_qdrant_collection_per_collection_with_cosine_distance_and_a_registry(store) -> None:
    from qdrant_client.http import models as qm

    store.collection("photos", model=fake_model(dim=16))
    store.collection("notes", model=fake_model(dim=8))
    client = store.backend.client
    names = {c.name for c in client.get_collections().collections}
    prefix = store.backend.prefix
    assert {prefix, f"{prefix}.photos", f"{prefix}.notes"} <= names
    params = client.get_collection(f"{prefix}.photos").config.params.vectors
    assert (params.size, params.distance) == (16, qm.Distance.COSINE)
    assert [i.space for i in store.collections()] == [fake_model(dim=8).space, fake_model(dim=16).space]


def test_random_filters_at_the_edges_match_the_reference_evaluator(store) -> None:
    rng = random.Random(13)
    col = store.collection("edges", model=fake_model(dim=8))
    vectors = unit(np.random.default_rng(13), 150, 8)
    records = [Record(f"r{i:03d}", "text", f"ref{i}", vectors[i], metadata=filter_cases.metadata(rng))
               for i in range(150)]
    col.upsert(records)
    assert col.backend.big_numbers  # the cases hold 2**53 + 1: numeric filters are checked exactly in Python
    q = vectors[0]
    for _ in range(200):
        where = filter_cases.where(rng)
        f = parse_where(where)
        keep = [r for r in records if matches(f, r.metadata)]
        assert sorted(r.id for r in col.items(where=where)) == sorted(r.id for r in keep), where
        assert col.count(where=where) == len(keep), where
        hits = col.search(vector=q, top_k=5, where=where)
        scores = np.stack([r.vector for r in keep]) @ q if keep else np.zeros(0)
        truth = [keep[i].id for i in sorted(range(len(keep)), key=lambda i: (-scores[i], keep[i].id))[:5]]
        assert [h.id for h in hits] == truth, where


def test_filters_qdrant_decides_alone_are_exact_and_the_others_are_bounded() -> None:
    exact = [{"a": "x"}, {"a": 2020}, {"a": {"$gte": 1.5}}, {"a": {"$in": ["x", 2, True]}}, {"a": {"$exists": False}},
             {"$not": {"$or": [{"a": {"$ne": 3}}, {"b": False}]}}]
    for where in exact:
        assert translate(Selection(where=parse_where(where))).exact, where
    inexact = [{"a": {"$gt": "2024-01-01"}}, {"a": 2**60 + 1}, {"$not": {"a": {"$lt": "m"}}}]
    for where in inexact:
        assert not translate(Selection(where=parse_where(where))).exact, where
    assert not translate(Selection(where=parse_where({"a": 3})), numbers_exact=False).exact


def test_string_ranges_and_big_integers_are_exact(store) -> None:
    col = store.collection("dates", model=fake_model(dim=8))
    dates = ["2023-12-31", "2024-01-01", "2024-06-15", "2025-01-01", "2024-1", "Z", "é"]
    col.upsert([Record(f"d{i}", "text", d, np.ones(8, dtype=np.float32), metadata={"date": d, "big": 2**60 + i})
                for i, d in enumerate(dates)])
    got = sorted(r.metadata["date"] for r in col.items(where={"date": {"$gte": "2024-01-01", "$lt": "2025"}}))
    assert got == ["2024-01-01", "2024-06-15", "2024-1"]  # code-point order, like every store
    assert col.count(where={"date": {"$gt": "Z"}}) == 1  # "é" sorts after "Z"
    assert [r.id for r in col.items(where={"big": 2**60 + 1})] == ["d1"]  # a float cannot tell 2**60 from 2**60+1
    assert col.count(where={"big": {"$gt": 2**60 + 5}}) == 1


def test_declared_metadata_keys_get_payload_indexes(tmp_path: Path) -> None:
    url = qdrant_server_url()
    if url is None:
        pytest.skip("payload indexes exist only on a Qdrant server (set CROSSMODAL_TEST_QDRANT_URL)")
    st = open_qdrant_server(tmp_path)
    st.close()
    uri = st.uri + ("&" if "?" in st.uri else "?") + "index=album,year"
    st = crossmodal.open_store(uri)
    col = st.collection("indexed", model=fake_model(dim=8))
    schema = st.backend.client.get_collection(col.backend.qname).payload_schema
    assert {"modality", "f.k_album.s", "f.k_album.n", "f.k_year.n", "f.k_year.e"} <= set(schema)
    assert st.check().clean
    st.close()


def test_leftovers_of_an_interrupted_create_or_drop_are_removed_by_check(store) -> None:
    from qdrant_client.http import models as qm

    client, prefix = store.backend.client, store.backend.prefix
    client.create_collection(f"{prefix}.half-made", vectors_config=qm.VectorParams(size=8, distance=qm.Distance.COSINE))
    report = store.check(repair=False)
    assert not report.clean and report.unresolved
    report = store.check()
    assert report.repairs and not report.unresolved
    assert f"{prefix}.half-made" not in {c.name for c in client.get_collections().collections}
    store.collection("again", model=fake_model(dim=8))
    store.delete_collection("again")
    assert f"{prefix}.again" not in {c.name for c in client.get_collections().collections}
    assert store.check().clean


def test_local_mode_on_disk_survives_reopening(tmp_path: Path) -> None:
    model = fake_model(dim=8)
    st = open_qdrant_local(tmp_path)
    ids = st.collection("c", model=model).add_texts(["kept", "also kept"], metadata=[{"k": 1}, {"k": 2}]).ids
    st.close()
    again = open_qdrant_local(tmp_path)
    col = again.collection("c", model=model)
    assert col.count() == 2 and col.get(ids[0]).metadata == {"k": 1}
    assert col.search("kept", top_k=1, where={"k": 1})[0].id == ids[0]
    assert again.check().clean and again.check().collections == {"c": 2}
    again.close()


def test_half_precision_vectors(tmp_path: Path) -> None:
    st = crossmodal.open_store(f"qdrant+local://{tmp_path / 'q'}?precision=f16")
    col = st.collection("half", model=fake_model(dim=8))
    params = st.backend.client.get_collection(col.backend.qname).config.params.vectors
    assert str(params.datatype.value) == "float16"
    st.close()


def test_local_mode_is_one_process_and_says_so(tmp_path: Path) -> None:
    first = open_qdrant_local(tmp_path)
    with pytest.raises(StoreUnavailable, match="already accessed"):
        open_qdrant_local(tmp_path)
    first.close()
    open_qdrant_local(tmp_path).close()  # free again once closed


def test_unknown_uri_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown Qdrant store option"):
        crossmodal.open_store("qdrant+local://:memory:?prefx=x")
    with pytest.raises(ConfigError, match="precision"):
        crossmodal.open_store("qdrant+local://:memory:?precision=f8")


def test_an_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable):
        crossmodal.open_store("qdrant://127.0.0.1:1?timeout=2")


def test_keyword_search_is_bm25_from_the_sparse_vectors_with_qdrant_idf(store) -> None:
    from collections import Counter

    from crossmodal.stores.keywords import K1, B, idf, query_terms, record_terms
    from crossmodal.stores.qdrant.keywords import AVG_TERMS

    col = store.collection("kw", model=fake_model(dim=8))
    texts = ["a cat on a mat", "a dog", "cat cat cat and a long tail of other words here", "nothing"]
    rng = np.random.default_rng(0)
    records = [Record(f"t{i}", "text", t, v, text=t) for i, (t, v) in enumerate(zip(texts, unit(rng, 4, 8)))]
    col.upsert(records)
    assert col.backend.sparse  # answered by Qdrant, not by reading every item
    docs = [record_terms(r) for r in records]
    terms = query_terms("cat dog")
    expected = {}
    for r, d in zip(records, docs):
        tf = Counter(d)
        norm = K1 * (1 - B + B * len(d) / AVG_TERMS)
        s = sum(idf(len(docs), sum(t in x for x in docs)) * tf[t] * (K1 + 1) / (tf[t] + norm) for t in terms if t in tf)
        if s:
            expected[r.id] = s
    hits = col.search("cat dog", using="keyword", top_k=10)
    assert [h.id for h in hits] == sorted(expected, key=lambda i: (-expected[i], i))
    np.testing.assert_allclose([h.score for h in hits], [expected[h.id] for h in hits], rtol=1e-5)


def test_qdrant_local_mode_ignores_the_text_index_tokenizer_so_none_is_used(tmp_path) -> None:
    """What qdrant-client's local mode does with a multilingual full-text index: splits on its own word regex,
    so Chinese stays one word; keyword search therefore never relies on it (the terms are split in Python)."""
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

    client = QdrantClient(":memory:")
    client.create_collection("t", vectors_config=qm.VectorParams(size=1, distance=qm.Distance.DOT))
    client.create_payload_index("t", "text", qm.TextIndexParams(type=qm.TextIndexType.TEXT,
                                                                 tokenizer=qm.TokenizerType.MULTILINGUAL))
    client.upsert("t", points=[qm.PointStruct(id=1, vector=[1.0], payload={"text": "我爱北京天安门"}),
                               qm.PointStruct(id=2, vector=[1.0], payload={"text": "我爱 北京 天安门"})])

    def found(word: str) -> list[int]:
        flt = qm.Filter(must=[qm.FieldCondition(key="text", match=qm.MatchText(text=word))])
        return sorted(p.id for p in client.scroll("t", scroll_filter=flt)[0])

    assert found("北京") == [2]  # the unsplit text is one token
    client.close()
