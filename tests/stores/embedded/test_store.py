"""The embedded store beyond the contract: HNSW path quality, derived files, repairs, concurrency."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.errors import CollectionNotFound, StoreCorrupt, StoreUnavailable
from crossmodal.space import Space
from crossmodal.store import Store, open_store
from crossmodal.stores.embedded import EmbeddedStore


class SpaceOnly:
    """Just a space: for collections of given vectors."""

    def __init__(self, dim: int, normalized: bool = True) -> None:
        self.space = Space(model="synthetic", dim=dim, normalized=normalized, fingerprint=f"synthetic-{dim}")
        self.name = "synthetic"


def clustered(n: int, dim: int, seed: int = 0, clusters: int = 50) -> np.ndarray:
    """Unit vectors around random centres, like real embeddings (uniform noise would be a worst case for any ANN)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def records(vectors: np.ndarray, start: int = 0) -> list[Record]:
    mods = ("image", "text", "pair")
    return [Record(f"v{start + i}", mods[(start + i) % 3], f"r{start + i}", v, metadata={"n": start + i})
            for i, v in enumerate(vectors)]


def exact_ids(vectors: np.ndarray, ids: list[str], q: np.ndarray, k: int) -> list[str]:
    scores = vectors @ q
    return [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.fixture
def big(tmp_path: Path):
    """3,000 clustered vectors, searched through HNSW (exact_limit=100)."""
    vectors = clustered(3000, 32)
    st = open_store(tmp_path / "store", exact_limit=100)
    col = st.collection("big", model=SpaceOnly(32))
    col.upsert(records(vectors))
    yield st, col, vectors
    st.close()


def test_hnsw_search_recall_and_exact_scores(big) -> None:
    st, col, vectors = big
    ids = [f"v{i}" for i in range(len(vectors))]
    queries = clustered(100, 32, seed=9)
    found = 0
    for q in queries:
        hits = col.search(vector=q, top_k=10)
        found += len({h.id for h in hits} & set(exact_ids(vectors, ids, q, 10)))
        for h in hits:  # scores are always the exact cosine of the stored vector
            assert h.score == pytest.approx(float(vectors[int(h.id[1:])] @ q), abs=1e-5)
    assert found / (10 * len(queries)) >= 0.98
    assert col.backend.derived("image").view.kind == "ann"


def test_pruning_by_usearchs_own_scores_loses_no_hit(big) -> None:
    # A space of unit vectors prunes HNSW candidates by usearch's scores and one bound from the query; a raw space
    # cannot (its norms are unbounded) and reads each candidate's stored copy. Both must find the same hits.
    st, col, vectors = big
    raw = st.collection("raw", model=SpaceOnly(32, normalized=False))
    raw.upsert(records(vectors))
    for q in clustered(100, 32, seed=11):
        hits, expected = col.search(vector=q, top_k=10), raw.search(vector=q, top_k=10)
        assert [h.id for h in hits] == [h.id for h in expected]  # (the normalized space renormalized each vector)
        assert [h.score for h in hits] == pytest.approx([h.score for h in expected], abs=1e-6)
    assert raw.backend.derived("image").view.kind == "ann"


def test_selective_and_broad_filters_on_the_hnsw_path(big) -> None:
    st, col, vectors = big
    q = clustered(1, 32, seed=4)[0]
    selective = col.search(vector=q, top_k=10, where={"n": {"$lt": 60}})  # 60 of 3000: exact over what is left
    expected = exact_ids(vectors[:60], [f"v{i}" for i in range(60)], q, 10)
    assert [h.id for h in selective] == expected
    broad = col.search(vector=q, top_k=10, where={"n": {"$gte": 100}}, modality="text")
    assert all(h.modality == "text" and h.metadata["n"] >= 100 for h in broad) and len(broad) == 10


def test_hnsw_files_are_saved_and_reused(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s", exact_limit=50)
    st.collection("c", model=SpaceOnly(16)).upsert(records(clustered(600, 16)))
    st.close()
    files = sorted(p.name for p in (tmp_path / "s" / "index").iterdir() if p.suffix == ".usearch")
    assert len(files) == 3
    assert [p.suffix for p in (tmp_path / "s" / "index").iterdir()].count(".npz") == 1  # the filter key sets
    again = open_store(tmp_path / "s", exact_limit=50)
    col = again.collection("c")
    col.search(vector=clustered(1, 16)[0], top_k=5)
    derived = col.backend.derived("image")
    assert derived.file in files and derived.changes == 0  # loaded, nothing to catch up
    again.close()


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_a_damaged_hnsw_file_is_rebuilt_and_reported(tmp_path: Path, damage: str) -> None:
    vectors = clustered(600, 16)
    st = open_store(tmp_path / "s", exact_limit=50)
    st.collection("c", model=SpaceOnly(16)).upsert(records(vectors))
    st.close()

    def harm() -> None:
        for path in (tmp_path / "s" / "index").glob("*.usearch"):  # (the filter key sets: test_keysets.py)
            if damage == "garbage":
                path.write_bytes(b"not an index" * 100)
            else:
                path.unlink()

    harm()
    st = open_store(tmp_path / "s", exact_limit=50)
    report = st.check()
    assert not report.clean and len(report.repairs) == 3 and not report.unresolved
    assert st.check().clean
    st.close()
    harm()
    st = open_store(tmp_path / "s", exact_limit=50)
    col = st.collection("c")
    for i in (0, 1, 2, 123):  # one per modality: each finds its index damaged
        assert col.search(vector=vectors[i], top_k=1)[0].id == f"v{i}"  # rebuilt from SQLite on the spot
    st.close()
    st = open_store(tmp_path / "s", exact_limit=50)
    assert st.check().clean  # and the search that rebuilt it saved the new file
    st.close()


def test_a_reader_catches_up_with_another_writer(tmp_path: Path) -> None:
    writer = open_store(tmp_path / "s", exact_limit=50)
    reader = open_store(tmp_path / "s", exact_limit=50)
    wcol = writer.collection("c", model=SpaceOnly(16))
    vectors = clustered(400, 16)
    wcol.upsert(records(vectors[:300]))
    rcol = reader.collection("c")
    assert rcol.search(vector=vectors[10], top_k=1)[0].id == "v10"
    wcol.upsert(records(vectors[300:], start=300))
    wcol.delete(["v10"])
    assert rcol.search(vector=vectors[350], top_k=1)[0].id == "v350"
    assert rcol.search(vector=vectors[10], top_k=1)[0].id != "v10"
    # the writer saves its HNSW files (pruning the deletion log); the reader's older view must notice
    wcol.delete([f"v{i}" for i in range(0, 300, 2)])
    wcol.backend.maintain()
    hits = rcol.search(vector=vectors[20], top_k=50)
    assert all(int(h.id[1:]) % 2 or int(h.id[1:]) >= 300 for h in hits)
    view = rcol.backend.derived("image").view
    assert len(view) == rcol.count(modality="image")
    writer.close()
    reader.close()


def test_readers_run_while_a_writer_writes(tmp_path: Path) -> None:
    writer = open_store(tmp_path / "s", exact_limit=200, durable=False)
    reader = open_store(tmp_path / "s", exact_limit=200)
    wcol = writer.collection("c", model=SpaceOnly(16))
    vectors = clustered(2000, 16)
    wcol.upsert(records(vectors[:100]))
    errors: list[BaseException] = []
    counts: list[int] = []

    def write() -> None:
        try:
            for start in range(100, 2000, 50):
                wcol.upsert(records(vectors[start:start + 50], start=start))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=write)
    rcol = reader.collection("c")
    thread.start()
    while thread.is_alive():
        counts.append(rcol.count())
        hits = rcol.search(vector=vectors[5], top_k=3)
        assert hits[0].id == "v5"
        time.sleep(0.001)
    thread.join()
    assert not errors
    assert counts == sorted(counts) and counts[0] >= 100
    assert rcol.count() == 2000 and rcol.search(vector=vectors[1999], top_k=1)[0].id == "v1999"
    writer.close()
    reader.close()


def test_a_collection_deleted_elsewhere_is_reported(tmp_path: Path) -> None:
    a, b = open_store(tmp_path / "s"), open_store(tmp_path / "s")
    col = a.collection("c", model=SpaceOnly(8))
    col.upsert(records(clustered(5, 8)))
    b.delete_collection("c")
    with pytest.raises(CollectionNotFound, match="deleted"):
        col.search(vector=np.ones(8, dtype=np.float32))
    a.close()
    b.close()


def test_check_repairs_counts_and_filter_rows_and_reports_damaged_vectors(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s")
    col = st.collection("c", model=SpaceOnly(8))
    col.upsert(records(clustered(30, 8)))
    st.close()
    db = sqlite3.connect(tmp_path / "s" / "store.db")
    db.execute("UPDATE counts SET n = n + 5 WHERE modality='image'")
    db.execute("DELETE FROM attrs WHERE key IN (SELECT key FROM items WHERE id='v3')")
    db.commit()
    db.close()
    st = open_store(tmp_path / "s")
    report = st.check()
    assert len(report.problems) == 2 and len(report.repairs) == 2 and not report.unresolved
    assert st.check().clean
    col = st.collection("c")
    assert col.count(modality="image") == 10 and col.count(where={"n": 3}) == 1
    st.close()
    db = sqlite3.connect(tmp_path / "s" / "store.db")
    db.execute("UPDATE items SET vector = x'00' WHERE id='v7'")
    db.commit()
    db.close()
    st = open_store(tmp_path / "s")
    report = st.check()
    assert report.unresolved and "'v7'" in report.unresolved[0]
    st.close()


def test_unusable_locations_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailable, match="is a file"):
        open_store(tmp_path / "file")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "store.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreCorrupt):
        open_store(tmp_path / "bad")


def test_open_store_picks_the_backend_by_uri(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "a").backend, EmbeddedStore)
    assert isinstance(open_store(f"file://{tmp_path / 'b'}").backend, EmbeddedStore)
    assert type(open_store("memory://").backend).__name__ == "MemoryStore"
    with pytest.raises(Exception, match="unknown store scheme"):
        open_store("ftp://example.com/x")
    assert isinstance(open_store(tmp_path / "c"), Store)


def test_rescoring_only_what_the_error_bound_keeps_gives_the_same_hits(big, monkeypatch) -> None:
    from crossmodal.stores.embedded.views import AnnView

    st, col, vectors = big
    queries = clustered(30, 32, seed=11)
    bounded = [[(h.id, h.score) for h in col.search(vector=q, top_k=10)] for q in queries]
    unbounded = AnnView.score_bounds
    monkeypatch.setattr(AnnView, "score_bounds",  # no bound: every candidate read and rescored
                        lambda self, keys, q: (unbounded(self, keys, q)[0], np.full(len(keys), np.inf)))
    every = [[(h.id, h.score) for h in col.search(vector=q, top_k=10)] for q in queries]
    assert bounded == every


@pytest.mark.parametrize("kind", ["ann", "exact"])
def test_hits_tied_on_score_beyond_top_k_come_by_id(tmp_path: Path, kind: str) -> None:
    # 23 copies of one vector over the three modalities: the first candidates read set the bar, and every other
    # copy reaches it exactly, so it must still be read for the tie-break by id
    vectors = clustered(1200, 32, seed=3)
    vectors[100:1200:50] = vectors[0]
    st = open_store(tmp_path / "store", exact_limit=100 if kind == "ann" else 10_000)
    col = st.collection("c", model=SpaceOnly(32))
    col.upsert(records(vectors))
    tied = sorted(f"v{i}" for i in [0, *range(100, 1200, 50)])
    for k in (5, 10, 20):
        hits = col.search(vector=vectors[0], top_k=k)
        assert [h.id for h in hits] == tied[:k]
        assert len({h.score for h in hits}) == 1
    assert col.backend.derived("pair").view.kind == kind
    st.close()


def test_an_hnsw_file_of_another_store_copied_over_the_recorded_one_is_rebuilt(tmp_path: Path) -> None:
    mine, theirs = clustered(600, 16, seed=1), clustered(600, 16, seed=2)
    for name, vectors in (("a", mine), ("b", theirs)):
        st = open_store(tmp_path / name, exact_limit=50)
        st.collection("c", model=SpaceOnly(16)).upsert(records(vectors))
        st.close()

    def recorded(name: str) -> dict[str, str]:
        db = sqlite3.connect(tmp_path / name / "store.db")
        try:
            return dict(db.execute("SELECT modality, file FROM ann").fetchall())
        finally:
            db.close()

    a, b = recorded("a"), recorded("b")
    for modality in a:  # the same layout, count and keys: only the vectors differ
        (tmp_path / "a" / "index" / a[modality]).write_bytes((tmp_path / "b" / "index" / b[modality]).read_bytes())
    st = open_store(tmp_path / "a", exact_limit=50)
    col = st.collection("c")
    ids = [f"v{i}" for i in range(len(mine))]
    queries = clustered(50, 16, seed=3)
    found = sum(len({h.id for h in col.search(vector=q, top_k=10)} & set(exact_ids(mine, ids, q, 10)))
                for q in queries)
    assert found / (10 * len(queries)) >= 0.98
    assert any("does not match" in e for m in ("image", "text", "pair") for e in col.backend.derived(m).events)
    st.close()
    st = open_store(tmp_path / "a", exact_limit=50)
    assert st.check().clean  # the search that noticed saved a rebuilt file
    st.close()


def test_a_move_interrupted_half_way_leaves_the_old_item_or_the_new_never_both(tmp_path: Path, monkeypatch) -> None:
    from PIL import Image

    from crossmodal.ingest import ingest
    from crossmodal.stores.embedded import EmbeddedCollection
    from crossmodal.testing.fake import fake_model

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (80 * i, 20, 200)).save(folder / f"p{i}.png")
    st = open_store(tmp_path / "s")
    col = st.collection("c", model=fake_model(dim=16))
    ingest(col, [folder], workers=0)
    (folder / "p0.png").rename(folder / "renamed.png")

    def killed(self, conn, gone):  # the process dies while the move deletes the old item
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(EmbeddedCollection, "_remove", killed)
        with pytest.raises(KeyboardInterrupt):
            ingest(col, [folder], workers=0)
    assert sorted(r.reference for r in col.items()) in (["p0.png", "p1.png", "p2.png"],
                                                        ["p1.png", "p2.png", "renamed.png"])
    assert st.check().clean
    report = ingest(col, [folder], workers=0)
    assert report.moved == 1 and sorted(r.reference for r in col.items()) == ["p1.png", "p2.png", "renamed.png"]
    st.close()


def test_check_reports_and_removes_the_leftovers_of_an_interrupted_move(tmp_path: Path) -> None:
    from dataclasses import replace

    from PIL import Image

    from crossmodal.identity import make_id
    from crossmodal.ingest import ingest
    from crossmodal.testing.fake import fake_model

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (80 * i, 20, 200)).save(folder / f"p{i}.png")
    st = open_store(tmp_path / "s")
    col = st.collection("c", model=fake_model(dim=16))
    ingest(col, [folder], workers=0)
    assert st.check().clean
    # what an older version left when killed between a move's two writes: the new item, and the old one whose
    # file is gone (same content); a copy of a file that still exists is no leftover
    p0 = next(r for r in col.items(modality="image", vectors=True) if r.reference == "p0.png")
    col.upsert([replace(p0, id=make_id("image", "old.png"), reference="old.png", source="old.png")])
    (folder / "copy.png").write_bytes((folder / "p1.png").read_bytes())
    ingest(col, [folder], workers=0)
    report = st.check(repair=False)
    assert not report.clean and len(report.unresolved) == 1 and "'old.png (item " in report.unresolved[0]
    report = st.check()
    assert len(report.repairs) == 1 and not report.unresolved
    assert sorted(r.reference for r in col.items()) == ["copy.png", "p0.png", "p1.png", "p2.png"]
    assert st.check().clean
    st.close()


def test_a_store_of_the_previous_schema_records_its_files_digests_and_keeps_them(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s", exact_limit=50)
    st.collection("c", model=SpaceOnly(16)).upsert(records(clustered(600, 16)))
    st.close()
    db = sqlite3.connect(tmp_path / "s" / "store.db")
    db.execute("ALTER TABLE ann DROP COLUMN digest")  # as schema 1 wrote it
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()
    st = open_store(tmp_path / "s", exact_limit=50)
    col = st.collection("c")
    col.search(vector=clustered(1, 16)[0], top_k=5)
    derived = col.backend.derived("image")
    assert derived.file is not None and derived.changes == 0 and not derived.events  # loaded, not rebuilt
    st.close()
    db = sqlite3.connect(tmp_path / "s" / "store.db")
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("2",)
    assert all(d.startswith("sha256:") for (d,) in db.execute("SELECT digest FROM ann"))
    db.close()


def test_store_check_finds_and_repairs_a_keyword_index_that_drifted(tmp_path) -> None:
    from crossmodal.stores.embedded import keywords as fts
    from crossmodal.testing.fake import fake_model

    st = open_store(tmp_path / "store")
    col = st.collection("notes", model=fake_model(dim=16))
    col.add_texts(["a zanzibar note", "a plain note", "another plain note"])
    assert st.check().clean
    backend = col.backend
    with backend.db.write() as conn:  # drift: a ghost row, a stale row, a missing row
        conn.execute(f"INSERT INTO {fts.table(backend.cid)} (rowid, terms) VALUES (999, 'ghost')")
        key = conn.execute("SELECT key FROM items WHERE text='a plain note'").fetchone()[0]
        conn.execute(f"UPDATE {fts.table(backend.cid)} SET terms='stale' WHERE rowid=?", (key,))
        conn.execute(f"DELETE FROM {fts.table(backend.cid)} WHERE rowid=(SELECT key FROM items WHERE "
                     "text='a zanzibar note')")
    assert col.search("zanzibar", using="keyword") == []
    found = st.check(repair=False)
    assert not found.clean and len(found.unresolved) == 3 and any("misses 1" in p for p in found.problems)
    fixed = st.check()
    assert any("rebuilt the keyword index" in r for r in fixed.repairs) and not fixed.unresolved
    assert st.check().clean
    assert col.search("zanzibar", using="keyword")[0].text == "a zanzibar note"
    assert col.search("ghost stale", using="keyword") == []
    st.close()


def test_a_store_from_before_keyword_search_gets_its_index_when_opened(tmp_path) -> None:
    from crossmodal.stores.embedded import keywords as fts
    from crossmodal.testing.fake import fake_model

    st = open_store(tmp_path / "store")
    col = st.collection("notes", model=fake_model(dim=16))
    col.add_texts(["a zanzibar note", "a plain note"])
    with col.backend.db.write() as conn:
        fts.drop(conn, col.backend.cid)
    st.close()
    st = open_store(tmp_path / "store")
    col = st.collection("notes")
    assert col.search("zanzibar", using="keyword")[0].text == "a zanzibar note"
    assert st.check().clean
    st.close()


def test_each_hnsw_view_prunes_with_the_precision_its_own_index_holds(tmp_path: Path, monkeypatch) -> None:
    # Reopened with another precision, a store keeps its saved bf16 file for one modality while a modality indexed
    # after that holds f32: each view's candidates must be bounded by its own precision's error. (Bounding the bf16
    # candidates with f32's, a hundred times smaller, would drop hits that the rescoring would have kept.)
    vectors = clustered(600, 16)
    st = open_store(tmp_path / "s", exact_limit=50)
    st.collection("c", model=SpaceOnly(16)).upsert(
        [Record(f"t{i}", "text", f"t{i}", v) for i, v in enumerate(vectors[:300])])
    st.close()  # saves the text view's HNSW file, in bf16
    st = open_store(tmp_path / "s", exact_limit=50, ann_dtype="f32")
    col = st.collection("c")
    col.upsert([Record(f"i{i}", "image", f"i{i}.jpg", v) for i, v in enumerate(vectors[300:])])
    seen: list = []
    fetch = col.backend._fetch

    def spy(conn, found, top_k, q):
        seen.append((found, q))
        return fetch(conn, found, top_k, q)

    monkeypatch.setattr(col.backend, "_fetch", spy)
    hits = col.search(vector=clustered(1, 16, seed=5)[0], top_k=5)
    (found, q), = seen
    image, text = col.backend.derived("image").view, col.backend.derived("text").view
    assert image.kind == text.kind == "ann" and image.index.dtype != text.index.dtype
    norm = col.backend._norm
    assert [f[2] for f in found] == [image.search_error(q, norm), text.search_error(q, norm)]  # searched in order
    assert found[1][2] > 100 * found[0][2] and len(hits) == 5
    st.close()
