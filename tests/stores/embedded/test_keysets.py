"""The metadata key-set index: equal to the reference evaluator on every filter kind, kept up with writes,
rebuilt when its file is missing, damaged or stale, checked and repaired by ``store check``; filtered search
through it equal to an exact filtered scan."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.store import open_store
from crossmodal.stores.embedded import collection as plan
from crossmodal.stores.filters import matches, parse_where

from .. import filter_cases
from .test_store import SpaceOnly, clustered

MODS = ("image", "text", "pair")


def _records(rng: random.Random, vectors: np.ndarray, start: int = 0) -> list[Record]:
    return [Record(f"r{start + i}", MODS[rng.randrange(3)], f"ref{start + i}", v, metadata=filter_cases.metadata(rng))
            for i, v in enumerate(vectors)]


def _expected(col, where) -> dict[str, set[str]]:
    f = parse_where(where)
    out: dict[str, set[str]] = {m: set() for m in MODS}
    for r in col.backend.scan():
        if matches(f, r.metadata):
            out[r.modality].add(r.id)
    return out


def _answered(col, where) -> dict[str, set[str]]:
    backend = col.backend
    keysets = backend.keysets()
    with backend.db.read() as conn:
        id_of = dict(conn.execute("SELECT key, id FROM items WHERE cid=?", (backend.cid,)).fetchall())
        with keysets.lock:
            keysets.current(conn)
            f = parse_where(where)
            got = {m: keysets.keys(f, m) for m in MODS}
    for keys in got.values():
        assert np.all(np.diff(keys) > 0)  # sorted, unique
    return {m: {id_of[int(k)] for k in keys} for m, keys in got.items()}


def _check_filters(col, rng: random.Random, n: int = 120) -> None:
    for _ in range(n):
        where = filter_cases.where(rng)
        assert _answered(col, where) == _expected(col, where), where


def test_key_sets_equal_the_reference_through_updates_deletes_and_reloads(tmp_path: Path) -> None:
    rng = random.Random(7)
    st = open_store(tmp_path / "s", exact_limit=20)
    col = st.collection("c", model=SpaceOnly(8))
    vectors = clustered(300, 8, seed=1)
    col.upsert(_records(rng, vectors))
    _check_filters(col, rng)  # built from SQLite
    # in-place metadata changes (same vector), vector changes, deletions and new items: the overlay
    same = [Record(r.id, r.modality, r.reference, r.vector, metadata=filter_cases.metadata(rng))
            for r in col.backend.get([f"r{i}" for i in range(0, 60)], vectors=True)]
    col.upsert(same)
    col.upsert(_records(rng, clustered(30, 8, seed=2), start=60))  # new vectors under old ids
    col.delete([f"r{i}" for i in range(100, 130)])
    col.upsert(_records(rng, clustered(40, 8, seed=3), start=1000))
    _check_filters(col, rng)
    assert col.backend.keysets().extra  # answered from base + overlay, not rebuilt
    st.close()  # saves the index
    again = open_store(tmp_path / "s", exact_limit=20)
    col2 = again.collection("c")
    _check_filters(col2, rng, 60)
    keysets = col2.backend.keysets()
    assert keysets.file is not None and not keysets.extra and not keysets.events  # loaded from its file
    again.close()


def test_a_reader_with_a_stale_file_catches_up_after_a_writer_was_killed(tmp_path: Path) -> None:
    rng = random.Random(3)
    st = open_store(tmp_path / "s", exact_limit=20)
    col = st.collection("c", model=SpaceOnly(8))
    col.upsert(_records(rng, clustered(200, 8)))
    st.close()
    writer = open_store(tmp_path / "s", exact_limit=20)
    wcol = writer.collection("c")
    wcol.upsert([Record(r.id, r.modality, r.reference, r.vector, metadata={"album": "new"})
                 for r in wcol.backend.get([f"r{i}" for i in range(50)], vectors=True)])
    wcol.delete([f"r{i}" for i in range(50, 70)])
    # the writer is never closed (as if killed): its changes are in SQLite, the saved index predates them
    reader = open_store(tmp_path / "s", exact_limit=20)
    rcol = reader.collection("c")
    assert {h.id for h in rcol.search(vector=clustered(1, 8, seed=5)[0], top_k=100, where={"album": "new"})} == {
        f"r{i}" for i in range(50)}
    _check_filters(rcol, rng, 60)
    reader.close()


@pytest.mark.parametrize("damage", ["missing", "garbage", "foreign"])
def test_a_missing_damaged_or_foreign_file_is_rebuilt_and_check_repairs_it(tmp_path: Path, damage: str) -> None:
    rng = random.Random(11)
    st = open_store(tmp_path / "s", exact_limit=20)
    st.collection("c", model=SpaceOnly(8)).upsert(_records(rng, clustered(200, 8)))
    st.close()
    other = open_store(tmp_path / "o", exact_limit=20)
    other.collection("c", model=SpaceOnly(8)).upsert(_records(random.Random(99), clustered(200, 8, seed=4)))
    other.close()
    (path,) = (tmp_path / "s" / "index").glob("*-keys-*.npz")
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not an index" * 10)
    else:
        (foreign,) = (tmp_path / "o" / "index").glob("*-keys-*.npz")
        path.write_bytes(foreign.read_bytes())
    again = open_store(tmp_path / "s", exact_limit=20)
    col = again.collection("c")
    _check_filters(col, rng, 40)  # rebuilt from SQLite, never trusted
    assert col.backend.keysets().events
    report = again.check(repair=True)
    assert any("filter index file" in p for p in report.problems)
    assert any("filter key sets" in r for r in report.repairs)
    assert not report.unresolved
    clean = again.check(repair=True)
    assert not clean.problems, clean.problems
    again.close()


def test_check_detects_key_sets_that_disagree_with_sqlite(tmp_path: Path) -> None:
    rng = random.Random(5)
    st = open_store(tmp_path / "s", exact_limit=20)
    col = st.collection("c", model=SpaceOnly(8))
    col.upsert(_records(rng, clustered(100, 8)))
    st.close()
    again = open_store(tmp_path / "s", exact_limit=20)
    backend = again.collection("c").backend
    with backend.db.write() as conn:  # a change that bypassed the log (a bug, or a hand edit)
        conn.execute("UPDATE attrs SET value='edited' WHERE rowid IN (SELECT rowid FROM attrs WHERE t='s' LIMIT 1)")
        conn.execute("UPDATE items SET metadata=json_set(metadata, '$.x', 1) WHERE 0")
    report = again.check(repair=False)
    assert any("filter key sets disagree" in p for p in report.problems), report.problems
    again.close()


def _exact_filtered(vectors: np.ndarray, metas: list[dict], mods: list[str], q: np.ndarray, where, modality, k):
    f = parse_where(where)
    ok = [i for i in range(len(vectors)) if matches(f, metas[i]) and (modality is None or mods[i] == modality)]
    scores = vectors[ok] @ q
    return [f"r{ok[j]}" for j in np.argsort(-scores, kind="stable")[:k]]


def test_filtered_search_equals_the_exact_filtered_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Selective filters (scored in full) give exactly the exact answer; broad ones (HNSW + key set) recall >= 0.99."""
    widened = []
    members = plan._members
    monkeypatch.setattr(plan, "_members", lambda *a: widened.append(1) or members(*a))
    rng = np.random.default_rng(0)
    n = 4000
    vectors = clustered(n, 16, seed=2)
    mods = [MODS[i % 3] for i in range(n)]
    metas = [{"year": int(2000 + rng.integers(0, 25)), "album": f"a{int(rng.integers(0, 10))}",
              "day": f"2024-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
              "tags": [f"t{int(t)}" for t in rng.integers(0, 30, int(rng.integers(0, 3)))]} for _ in range(n)]
    st = open_store(tmp_path / "s", exact_limit=100)
    col = st.collection("c", model=SpaceOnly(16))
    col.upsert([Record(f"r{i}", mods[i], f"ref{i}", vectors[i], metadata=metas[i]) for i in range(n)])
    selective = [{"year": 2003, "album": "a1"}, {"tags": {"$in": ["t1", "t2"]}}, {"day": {"$gte": "2024-12-20"}},
                 {"$and": [{"year": {"$gt": 2010, "$lte": 2012}}, {"$not": {"album": "a3"}}]}]
    broad = [{"album": {"$ne": "a0"}}, {"year": {"$gte": 2005}}, {"$or": [{"album": "a1"}, {"tags": {"$exists": True}}]},
             {"album": {"$nin": ["a1", "a2"]}}, {"day": {"$lt": "2024-07-01"}}, {"album": "a4"}]
    queries = clustered(30, 16, seed=8)
    for where in selective:
        for modality in (None, "image"):
            for q in queries[:10]:
                hits = col.search(vector=q, top_k=10, where=where, modality=modality)
                assert [h.id for h in hits] == _exact_filtered(vectors, metas, mods, q, where, modality, 10), where
    assert not widened  # every selective filter was scored in full
    for where in broad:
        found = total = 0
        for q in queries:
            truth = _exact_filtered(vectors, metas, mods, q, where, None, 10)
            hits = col.search(vector=q, top_k=10, where=where)
            assert all(matches(parse_where(where), h.metadata) for h in hits)
            found += len({h.id for h in hits} & set(truth))
            total += len(truth)
        assert found / total >= 0.99, (where, found / total)
    assert widened  # and the broad ones went through the widened HNSW search
    st.close()
