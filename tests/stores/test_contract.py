"""The store contract: every store (tests/stores/conftest.py STORES) behaves like the reference semantics.

Written once against the public Collection API; each test runs on every store.
Expected answers come from numpy (exact search) and from the reference filter
evaluator (crossmodal.stores.filters.matches), never from the store under test.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import crossmodal
from crossmodal import Record
from crossmodal.errors import (
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    DimensionMismatch,
    InputError,
    ItemNotFound,
    SpaceMismatch,
)
from crossmodal.stores.filters import matches, parse_where
from crossmodal.testing.fake import fake_model

DIM = 16
MODALITIES = ("image", "text", "pair")


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def metadata_for(i: int) -> dict:
    """Varied metadata: ints, floats, strings, bools, lists, nulls and missing keys."""
    meta: dict = {"n": i, "album": f"{2020 + i % 5}", "rating": round((i * 0.37) % 5, 2), "starred": i % 3 == 0}
    if i % 4:
        meta["tags"] = [["cat", "dog", "bird"][i % 3], ["indoor", "outdoor"][i % 2]]
    if i % 7 == 0:
        meta["year"] = None
    elif i % 6:
        meta["year"] = 2015 + i % 10
    if i % 9 == 0:
        meta["date"] = f"2024-0{1 + i % 9}-1{i % 10}"
    return meta


@pytest.fixture
def model():
    return fake_model(dim=DIM)


@pytest.fixture
def filled(store, model):
    """A collection of 120 items over three modalities with known vectors and metadata."""
    rng = np.random.default_rng(7)
    vectors = unit(rng, 120)
    col = store.collection("things", model=model)
    records = [Record(f"item-{i:03d}", MODALITIES[i % 3], f"ref/{i}", vectors[i], metadata=metadata_for(i))
               for i in range(120)]
    col.upsert(records)
    return col, records


def exact(records: list[Record], q: np.ndarray, k: int, keep=lambda r: True) -> list[tuple[str, float]]:
    chosen = [r for r in records if keep(r)]
    scores = np.stack([r.vector for r in chosen]) @ q if chosen else np.zeros(0)
    order = sorted(range(len(chosen)), key=lambda i: (-float(scores[i]), chosen[i].id))[:k]
    return [(chosen[i].id, float(scores[i])) for i in order]


def assert_same_hits(hits, expected) -> None:
    assert [h.id for h in hits] == [e[0] for e in expected]
    np.testing.assert_allclose([h.score for h in hits], [e[1] for e in expected], atol=1e-5)


# -- add, get, count, upsert, delete -------------------------------------------------------------------------------


def test_add_texts_then_get_and_count(store, model) -> None:
    col = store.collection("notes", model=model)
    result = col.add_texts(["a red cat", "a blue dog"], metadata=[{"lang": "en"}, None])
    assert result.added == 2 and col.count() == 2 and len(col) == 2
    item = col.get(result.ids[0], vector=True)
    assert (item.modality, item.reference, item.text, dict(item.metadata)) == ("text", "a red cat", "a red cat",
                                                                               {"lang": "en"})
    np.testing.assert_allclose(item.vector, model.embed_texts(["a red cat"])[0], atol=1e-6)
    assert col.get(result.ids[1]).vector is None  # vectors only when asked for
    assert col.count(modality="text") == 2 and col.count(modality="image") == 0


def test_adding_the_same_text_twice_keeps_one_item_and_embeds_once(store, model) -> None:
    col = store.collection("notes", model=model)
    first = col.add_texts(["a red cat"])
    calls = len(model.encoder.calls)
    again = col.add_texts(["a red cat"])
    assert again.ids == first.ids and again.unchanged == 1 and again.added == 0
    assert len(model.encoder.calls) == calls  # nothing embedded again
    relabelled = col.add_texts(["a red cat"], metadata=[{"album": "x"}])
    assert relabelled.updated == 1 and len(model.encoder.calls) == calls  # new metadata, same vector reused
    assert col.count() == 1 and col.get(first.ids[0]).metadata == {"album": "x"}


def test_upsert_replaces_vector_and_metadata(filled) -> None:
    col, records = filled
    new = unit(np.random.default_rng(1), 1)[0]
    col.upsert(Record("item-005", "image", "ref/new", new, metadata={"album": "moved"}))
    assert col.count() == 120
    item = col.get("item-005", vector=True)
    assert (item.modality, item.reference, dict(item.metadata)) == ("image", "ref/new", {"album": "moved"})
    np.testing.assert_allclose(item.vector, new, atol=1e-6)
    top = col.search(vector=new, top_k=1)[0]
    assert top.id == "item-005" and top.score == pytest.approx(1.0, abs=1e-5)
    old = col.search(vector=records[5].vector, top_k=3)
    assert all(h.id != "item-005" or h.score < 0.999 for h in old)
    assert col.count(modality="pair") == 39 and col.count(modality="image") == 41


def test_upsert_of_the_same_id_twice_in_one_call_keeps_the_last(store, model) -> None:
    col = store.collection("c", model=model)
    a, b = unit(np.random.default_rng(2), 2)
    col.upsert([Record("x", "text", "first", a), Record("x", "text", "second", b)])
    assert col.count() == 1 and col.get("x").reference == "second"


def test_delete_by_ids_and_by_filter(filled) -> None:
    col, records = filled
    assert col.delete(["item-000", "item-001", "no-such-item"]) == 2
    assert col.delete("item-002") == 1
    with pytest.raises(ItemNotFound):
        col.get("item-000")
    where = {"album": "2021"}
    expected = sum(1 for r in records[3:] if matches(parse_where(where), r.metadata))
    assert col.delete(where=where) == expected
    assert col.count() == 117 - expected and col.count(where=where) == 0
    gone = col.delete(modality="pair")
    assert gone > 0 and col.count(modality="pair") == 0
    assert {h.modality for h in col.search(vector=records[10].vector, top_k=200)} <= {"image", "text"}
    with pytest.raises(ConfigError):
        col.delete()  # refusing to delete everything by accident


def test_get_many_skips_missing_ids_and_keeps_order(filled) -> None:
    col, _ = filled
    got = col.get_many(["item-010", "nope", "item-003"])
    assert [r.id for r in got] == ["item-010", "item-003"]


def test_items_lists_everything_once_with_vectors(filled) -> None:
    col, records = filled
    listed = list(col.items(vectors=True))
    assert sorted(r.id for r in listed) == sorted(r.id for r in records)
    by_id = {r.id: r for r in records}
    for r in listed:
        np.testing.assert_allclose(r.vector, by_id[r.id].vector, atol=1e-6)
    assert {r.id for r in col.items(modality="text")} == {r.id for r in records if r.modality == "text"}


# -- search ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 10, 50, 500])
def test_top_k_order_and_scores_equal_exact_numpy_search(filled, k: int) -> None:
    col, records = filled
    for q in unit(np.random.default_rng(3), 8):
        assert_same_hits(col.search(vector=q, top_k=k), exact(records, q, k))


@pytest.mark.parametrize("modality", MODALITIES)
def test_modality_filter_returns_only_that_modality(filled, modality: str) -> None:
    col, records = filled
    q = unit(np.random.default_rng(4), 1)[0]
    hits = col.search(vector=q, top_k=15, modality=modality)
    assert {h.modality for h in hits} == {modality}
    assert_same_hits(hits, exact(records, q, 15, lambda r: r.modality == modality))
    assert col.count(modality=modality) == 40


FILTERS = [
    {"album": "2022"},
    {"n": 17},
    {"n": 17.0},
    {"rating": {"$gt": 2.5}},
    {"rating": {"$gte": 1.11, "$lt": 3.7}},
    {"year": {"$lte": 2018}},
    {"year": {"$gte": 2020, "$lt": 2023}},
    {"date": {"$gte": "2024-03-00"}},
    {"album": {"$in": ["2020", "2024"]}},
    {"album": {"$nin": ["2020", "2024"]}},
    {"album": {"$ne": "2023"}},
    {"tags": "cat"},
    {"tags": {"$in": ["bird", "nothing"]}},
    {"tags": {"$nin": ["outdoor"]}},
    {"starred": True},
    {"starred": False},
    {"starred": 1},  # booleans are not numbers
    {"n": True},
    {"year": {"$exists": True}},
    {"year": {"$exists": False}},
    {"tags": {"$exists": False}},
    {"album": "2021", "starred": True},
    {"$or": [{"album": "2021"}, {"tags": "bird"}]},
    {"$and": [{"n": {"$gte": 30}}, {"$not": {"tags": "dog"}}]},
    {"$not": {"$or": [{"year": {"$gt": 2019}}, {"starred": True}]}},
    {"album": 2022},  # a number never equals a string
    {"missing": "x"},
    # NUL characters, which PostgreSQL cannot store: filters on them still follow the reference semantics
    {"album": "2022\x00"},
    {"album": {"$in": ["2021", "x\x00"]}},
    {"album": {"$nin": ["\x00"]}},
    {"album": {"$gt": "2022\x00"}},
    {"album": {"$lte": "2022\x00z"}},
    {"k\x00": {"$exists": False}},
    {"k\x00": {"$ne": 1}},
]


@pytest.mark.parametrize("where", FILTERS, ids=[str(f) for f in FILTERS])
def test_filters_match_the_reference_evaluator(filled, where: dict) -> None:
    col, records = filled
    f = parse_where(where)
    keep = [r for r in records if matches(f, r.metadata)]
    assert col.count(where=where) == len(keep)
    assert {r.id for r in col.items(where=where)} == {r.id for r in keep}
    q = unit(np.random.default_rng(5), 1)[0]
    assert_same_hits(col.search(vector=q, top_k=20, where=where), exact(records, q, 20, lambda r: r in keep))
    image_only = col.search(vector=q, top_k=5, where=where, modality="image")
    assert_same_hits(image_only, exact(records, q, 5, lambda r: r in keep and r.modality == "image"))


def _deepest(depth: int) -> dict:
    """A filter nested ``depth`` levels deep, every kind of level on the way ($and, $or, $not, several keys)."""
    where: dict = {"n": {"$ne": 3}}
    for level in range(depth):
        kind = level % 4
        if kind == 0:
            where = {"$not": where}
        elif kind == 1:
            where = {"$or": [where, {"album": "2021"}]}
        elif kind == 2:
            where = {"$and": [where, {"tags": {"$nin": ["bird"]}}]}
        else:
            where = {"starred": {"$exists": True}, **where}  # an object of two conditions: an $and
    from crossmodal.stores.filters import MAX_DEPTH

    if depth <= MAX_DEPTH:
        assert _depth(parse_where(where)) == depth
    return where


def _depth(f) -> int:
    from crossmodal.stores.filters import Cond, Not

    if isinstance(f, Cond):
        return 0
    return 1 + max(_depth(p) for p in ((f.part,) if isinstance(f, Not) else f.parts))


def _at_the_limits() -> list[dict]:
    from crossmodal.stores.filters import MAX_CONDITIONS, MAX_DEPTH, MAX_VALUES

    per_key = MAX_VALUES // 2
    return [
        _deepest(MAX_DEPTH),
        {"$or": [{"n": i} if i % 2 else {"album": {"$ne": str(2020 + i)}} for i in range(MAX_CONDITIONS)]},
        {f"k{i}": {"$exists": False} for i in range(MAX_CONDITIONS)},
        {"n": {"$in": list(range(per_key))}, "album": {"$nin": [f"x{i}" for i in range(MAX_VALUES - per_key - 1)] + ["2021"]}},
        {"n": {"$gt": -(2**63), "$lt": 2**63 - 1}},
        {"$or": [{"n": 2**63 - 1}, {"n": -(2**63)}, {"rating": {"$lt": 1.7976931348623157e308}}]},
    ]


def _past_the_limits() -> list[tuple[dict, str]]:
    from crossmodal.stores.filters import MAX_CONDITIONS, MAX_DEPTH, MAX_VALUES

    return [
        (_deepest(MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels"),
        (_deepest(40 * MAX_DEPTH), f"nested more than {MAX_DEPTH} levels"),
        ({"$or": [{"n": i} for i in range(MAX_CONDITIONS + 1)]}, f"{MAX_CONDITIONS + 1} conditions; the limit is"),
        ({f"k{i}": 1 for i in range(MAX_CONDITIONS + 1)}, f"{MAX_CONDITIONS + 1} conditions; the limit is"),
        ({"n": {"$in": list(range(MAX_VALUES + 1))}}, f"{MAX_VALUES + 1} values; the limit is {MAX_VALUES}"),
        ({"n": 2**63}, "does not fit in 64 bits"),
        ({"n": {"$gte": -(2**63) - 1}}, "does not fit in 64 bits"),
        ({"n": {"$in": [1, 2**64]}}, "does not fit in 64 bits"),
        ({"rating": {"$lt": float("inf")}}, "not a finite number"),
    ]


@pytest.mark.parametrize("case", range(len(_at_the_limits())))
def test_filters_at_the_limits_work(filled, case: int) -> None:
    col, records = filled
    where = _at_the_limits()[case]
    f = parse_where(where)
    keep = [r for r in records if matches(f, r.metadata)]
    assert col.count(where=where) == len(keep)
    assert {r.id for r in col.items(where=where)} == {r.id for r in keep}
    q = unit(np.random.default_rng(6), 1)[0]
    assert_same_hits(col.search(vector=q, top_k=10, where=where), exact(records, q, 10, lambda r: r in keep))
    assert col.delete(where=where) == len(keep)
    assert col.count() == len(records) - len(keep)


@pytest.mark.parametrize("case", range(len(_past_the_limits())))
def test_filters_past_the_limits_are_refused_clearly_and_change_nothing(filled, case: int) -> None:
    col, records = filled
    where, message = _past_the_limits()[case]
    q = unit(np.random.default_rng(6), 1)[0]
    for call in (lambda: col.count(where=where), lambda: list(col.items(where=where)),
                 lambda: col.search(vector=q, top_k=5, where=where), lambda: col.delete(where=where)):
        with pytest.raises(ConfigError, match=message):
            call()
    assert col.count() == len(records)


def test_more_like_this_leaves_the_item_out(filled) -> None:
    col, records = filled
    hits = col.search(like="item-042", top_k=5)
    assert_same_hits(hits, exact(records, records[42].vector, 5, lambda r: r.id != "item-042"))
    with pytest.raises(ItemNotFound):
        col.search(like="no-such-item")


def test_search_by_text_finds_the_text(store, model) -> None:
    col = store.collection("notes", model=model)
    col.add_texts(["a red cat sleeps", "a blue dog runs", "green trees grow"])
    hits = col.search("red cat", top_k=3)
    assert hits[0].reference == "a red cat sleeps" and hits[0].modality == "text"
    assert hits[0].score > hits[1].score


def test_empty_collection(store, model) -> None:
    col = store.collection("empty", model=model)
    assert col.count() == 0 and list(col.items()) == []
    assert col.search("anything") == []
    assert col.search(vector=np.ones(DIM, dtype=np.float32), where={"a": 1}, modality="image") == []
    assert col.delete(["x"]) == 0 and col.delete(where={"a": 1}) == 0


# -- spaces and dimensions ------------------------------------------------------------------------------------------------


def test_wrong_dim_vectors_are_refused(store, model) -> None:
    col = store.collection("c", model=model)
    with pytest.raises(DimensionMismatch, match="dim 16"):
        col.upsert(Record("x", "text", "x", np.ones(DIM + 1, dtype=np.float32)))
    with pytest.raises(DimensionMismatch):
        col.search(vector=np.ones(8, dtype=np.float32))
    assert col.count() == 0


def test_a_model_from_another_space_is_refused_naming_both(store, model) -> None:
    store.collection("c", model=model)
    for other in (fake_model(dim=DIM, seed=1, name="other"), fake_model(dim=32), fake_model(dim=DIM, mode="fast")):
        with pytest.raises(SpaceMismatch) as err:
            store.collection("c", model=other)
        assert str(model.space) in str(err.value) and str(other.space) in str(err.value)
    store.collection("c", model=fake_model(dim=DIM))  # the same space in a new Model object is fine


def test_bad_inputs_are_named(store, model) -> None:
    col = store.collection("c", model=model)
    with pytest.raises(ConfigError, match="modality"):
        col.search("x", modality="video")
    with pytest.raises(ConfigError, match="top_k"):
        col.search("x", top_k=0)
    with pytest.raises(ConfigError, match="unknown operator"):
        col.search("x", where={"a": {"$regex": "x"}})
    with pytest.raises(InputError, match="metadata 'bad'"):
        col.add_texts(["x"], metadata=[{"bad": {"nested": 1}}])
    with pytest.raises(InputError, match="modality"):
        col.upsert(Record("x", "video", "x", np.ones(DIM, dtype=np.float32)))
    with pytest.raises(ConfigError, match="exactly one query"):
        col.search()
    assert col.count() == 0


# -- texts ----------------------------------------------------------------------------------------------------------------


def test_unicode_and_very_long_texts_round_trip(store, model) -> None:
    col = store.collection("notes", model=model)
    long_text = " ".join(f"word{i}" for i in range(20_000))  # far over the context length: truncated for embedding
    texts = ["一条龙在天上飞", "émoji 🐉 and ß", "نص عربي", long_text]
    result = col.add_texts(texts, metadata=[{"lang": "中文"}, {"lang": "fr", "tags": ["ü", "🐉"]}, {}, {"long": True}])
    for item_id, text in zip(result.ids, texts):
        assert col.get(item_id).text == text
    assert col.search("一条龙在天上飞", top_k=1)[0].reference == texts[0]
    assert [h.reference for h in col.search(vector=col.get(result.ids[1], vector=True).vector,
                                            where={"tags": "🐉"})] == [texts[1]]
    assert col.count(where={"lang": "中文"}) == 1
    col.upsert(Record("ид-🐉", "text", "unicode id", np.ones(DIM, dtype=np.float32)))
    assert col.get("ид-🐉").reference == "unicode id"


def test_file_names_that_are_not_utf8_round_trip(store, model) -> None:
    """A file name's undecodable bytes arrive as surrogate escapes (os.fsdecode); every store gives them back."""
    col = store.collection("files", model=model)
    name = "photos/bad_\udcff\udcfe.jpg"  # b"photos/bad_\xff\xfe.jpg"
    odd = "\ufdd0 and \ud800"  # the store's escape character itself, and a lone surrogate
    vec = unit(np.random.default_rng(5), 1)[0]
    col.upsert([Record("bad", "image", name, vec, source=name, metadata={"image": name, "odd": [odd]}),
                Record("odd", "text", odd, unit(np.random.default_rng(6), 1)[0], text=odd)])
    got = col.get("bad")
    assert (got.reference, got.source, dict(got.metadata)) == (name, name, {"image": name, "odd": [odd]})
    assert (col.get("odd").reference, col.get("odd").text) == (odd, odd)
    assert os.fsencode(got.reference) == b"photos/bad_\xff\xfe.jpg"
    hit = col.search(vector=vec, top_k=1, where={"image": name})[0]
    assert (hit.id, hit.reference) == ("bad", name)
    assert col.count(where={"odd": odd}) == 1 and {r.reference for r in col.items()} == {name, odd}


def test_upsert_with_delete_writes_and_deletes_in_one_step(filled) -> None:
    col, records = filled
    new = unit(np.random.default_rng(3), 2)
    col.upsert([Record("moved-1", "image", "ref/moved-1", new[0]), Record("item-004", "text", "ref/4b", new[1])],
               delete=["item-001", "item-002", "item-004", "no-such-item"])
    assert col.count() == 120 + 1 - 2  # a record and a delete of the same id: the record wins
    assert [r.id for r in col.get_many(["item-001", "item-002", "moved-1", "item-004"])] == ["moved-1", "item-004"]
    assert col.search(vector=new[0], top_k=1)[0].id == "moved-1"
    assert all(h.id not in ("item-001", "item-002") for h in col.search(vector=records[1].vector, top_k=5))


# -- the optional part of the protocol: defaults and capabilities ------------------------------------------------------


def test_a_bulk_load_round_trips_and_searches_stay_exact_meanwhile(store, model) -> None:
    col = store.collection("bulk", model=model)
    rng = np.random.default_rng(8)
    vectors = unit(rng, 150)
    records = [Record(f"b-{i:03d}", MODALITIES[i % 3], f"ref/{i}", vectors[i], metadata=metadata_for(i))
               for i in range(150)]
    q = unit(rng, 1)[0]
    with col.backend.bulk_load():
        col.upsert(records[:80])
        assert_same_hits(col.search(vector=q, top_k=10), exact(records[:80], q, 10))
        col.upsert(records[80:])
    assert col.count() == 150
    assert_same_hits(col.search(vector=q, top_k=10), exact(records, q, 10))
    where = {"album": {"$in": ["2021", "2023"]}}
    assert_same_hits(col.search(vector=q, top_k=10, where=where),
                     exact(records, q, 10, lambda r: matches(parse_where(where), r.metadata)))
    stored = {r.id: r for r in col.items(vectors=True)}
    assert sorted(stored) == [r.id for r in records]
    np.testing.assert_allclose(np.stack([stored[r.id].vector for r in records]), vectors, atol=1e-3)
    col.backend.maintain()
    report = store.check(repair=False)  # every derived index is back, built once (pgvector: its HNSW index)
    assert report.clean and not report.notes, report.to_dict()


def test_a_bulk_load_cut_short_keeps_what_it_wrote(store, model) -> None:
    col = store.collection("bulk", model=model)
    vectors = unit(np.random.default_rng(9), 40)
    with pytest.raises(RuntimeError, match="stopped"), col.backend.bulk_load():
        col.upsert([Record(f"b{i}", "text", f"r{i}", vectors[i]) for i in range(40)])
        raise RuntimeError("stopped")
    assert col.count() == 40 and col.search(vector=vectors[7], top_k=1)[0].id == "b7"
    col.backend.maintain()
    report = store.check(repair=False)
    assert report.clean and not report.notes, report.to_dict()


def test_the_store_says_whether_several_machines_may_write_it(store, store_case) -> None:
    from crossmodal.stores.uri import backend_class

    assert store.backend.shared is store_case.shared
    # a capability of the class, known from the URI before anything is opened (distributed ingest asks it so)
    assert backend_class(store.uri) is type(store.backend)
    assert type(store.backend).shared is store_case.shared and store.backend.kind


def test_declaring_indexes_is_a_hint_that_never_changes_results(filled) -> None:
    col, records = filled
    q = unit(np.random.default_rng(10), 1)[0]
    wheres = [{"album": "2022"}, {"year": {"$gte": 2020}}, {"tags": "cat"}, {"starred": True}]
    before = [([h.id for h in col.search(vector=q, top_k=10, where=w)], col.count(where=w)) for w in wheres]
    col.backend.declare_indexes(["album", "year", "tags", "starred"])
    col.backend.declare_indexes(["album"])  # again, and a subset: nothing to do
    after = [([h.id for h in col.search(vector=q, top_k=10, where=w)], col.count(where=w)) for w in wheres]
    assert after == before
    for w, (ids, n) in zip(wheres, after):
        keep = [r for r in records if matches(parse_where(w), r.metadata)]
        assert ids == [e[0] for e in exact(keep, q, 10)] and n == len(keep)


def test_maintain_leaves_nothing_for_the_next_reader_to_catch_up(filled, store) -> None:
    col, records = filled
    gone = {f"item-{i:03d}" for i in range(0, 30, 3)}
    col.delete(sorted(gone))
    col.backend.maintain()
    report = store.check(repair=False)
    assert report.clean and not report.notes, report.to_dict()
    q = unit(np.random.default_rng(11), 1)[0]
    assert_same_hits(col.search(vector=q, top_k=10), exact([r for r in records if r.id not in gone], q, 10))


# -- collections and persistence --------------------------------------------------------------------------------------------


def test_several_collections_live_in_one_store(store, model) -> None:
    a = store.collection("alpha", model=model)
    b = store.collection("beta", model=fake_model(dim=8))
    a.add_texts(["one", "two"])
    b.add_texts(["three"])
    assert [i.name for i in store.collections()] == ["alpha", "beta"]
    assert (a.count(), b.count()) == (2, 1)
    assert {i.name: i.space.dim for i in store.collections()} == {"alpha": DIM, "beta": 8}
    store.delete_collection("alpha")
    assert [i.name for i in store.collections()] == ["beta"]
    with pytest.raises(CollectionNotFound):
        store.collection("alpha")  # no model: cannot create
    with pytest.raises(CollectionNotFound):
        store.collection("alpha", model=model, create=False)
    assert store.collection("beta").count() == 1  # opens without a model for reading


def test_opening_without_a_model_still_searches_by_vector_but_not_by_text(store, model) -> None:
    store.collection("c", model=model).add_texts(["hello world"])
    col = store.collection("c")
    assert col.search(like=col.search(vector=model.embed_texts(["hello world"])[0])[0].id) == []
    with pytest.raises(ConfigError, match="without a model"):
        col.search("hello")


def test_backend_refuses_a_duplicate_collection(store, model) -> None:
    store.collection("c", model=model)
    with pytest.raises(CollectionExists):
        store.backend.create_collection(store.collection("c").info)


def test_data_survives_reopening(store_case, tmp_path, model) -> None:
    if not store_case.reopens:
        pytest.skip(f"{store_case.name} keeps nothing between opens")
    st = store_case.open(tmp_path)
    ids = st.collection("c", model=model).add_texts(["kept", "also kept"], metadata=[{"k": 1}, {"k": 2}]).ids
    st.close()
    again = store_case.open(tmp_path)
    col = again.collection("c", model=model)
    assert col.count() == 2 and col.get(ids[0]).metadata == {"k": 1}
    assert col.search("kept", top_k=1, where={"k": 1})[0].id == ids[0]
    assert again.check().clean
    again.close()


def test_store_check_is_clean_on_a_fresh_store(filled, store) -> None:
    report = store.check()
    assert report.clean and report.collections == {"things": 120}


def test_crossmodal_open_store_defaults_to_settings(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CROSSMODAL_STORE", str(tmp_path / "from-env"))
    with crossmodal.open_store() as st:
        assert st.uri == str(tmp_path / "from-env")
