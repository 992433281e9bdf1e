"""Read-ahead hints: the page each row lies on, asked for exactly when a search's rows are not cached."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from crossmodal import Record
from crossmodal.store import open_store
from crossmodal.stores.embedded.pages import WARM_CHECK_EVERY, WARM_STREAK, OsFile, RowPages, leaf_map

from .test_store import SpaceOnly


def _sqlite_leaves(conn: sqlite3.Connection, table: str) -> np.ndarray:
    """The leaf page of each row of ``table`` in key order, by SQLite itself (its ``dbstat`` table walks the
    B-tree: leaves in tree order, each with its number of rows)."""
    leaves = conn.execute("SELECT pageno, ncell FROM dbstat WHERE name=? AND pagetype='leaf' ORDER BY path",
                          (table,)).fetchall()
    return np.repeat([p for p, _ in leaves], [n for _, n in leaves])


def _has_dbstat() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT * FROM dbstat LIMIT 1")
    except sqlite3.OperationalError:
        return False
    return True


needs_dbstat = pytest.mark.skipif(not _has_dbstat(), reason="this SQLite has no dbstat table to check against")


@needs_dbstat
def test_every_row_maps_to_the_leaf_page_sqlite_keeps_it_on(tmp_path: Path) -> None:
    # small pages and rows of mixed sizes (some overflowing their page) make a B-tree four levels deep
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size=512")
    conn.execute("CREATE TABLE t (x BLOB)")
    rng = random.Random(0)
    conn.executemany("INSERT INTO t VALUES (?)", [(rng.randbytes(rng.choice([10, 100, 300, 900])),)
                                                  for _ in range(20_000)])
    conn.execute("DELETE FROM t WHERE rowid % 7 = 0 OR rowid BETWEEN 5000 AND 9000")
    conn.commit()
    below_root = conn.execute("SELECT max(length(path) - length(replace(path, '/', ''))) FROM dbstat "
                              "WHERE name='t' AND pagetype='leaf'").fetchone()[0] - 1  # '/000/01a/': 2
    assert below_root >= 3
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='t'").fetchone()[0]
    fd = os.open(path, os.O_RDONLY)
    try:
        leaves = leaf_map(lambda n: os.pread(fd, 512, (n - 1) * 512), root)
    finally:
        os.close(fd)
    keys = [r[0] for r in conn.execute("SELECT rowid FROM t ORDER BY rowid")]
    expected = _sqlite_leaves(conn, "t")
    assert len(leaves.pages) == len(set(expected.tolist()))
    assert np.array_equal(leaves.pages_of(keys), expected)
    assert [leaves.page_of(k) for k in keys] == expected.tolist()
    # keys past the last row (rows added since) go to the last leaf, where SQLite appends them
    assert leaves.pages_of([10**12])[0] == expected[-1]


class Recording:
    """The real file, but cached or not as the test says, and every hint recorded."""

    def __init__(self, path: Path, cached: bool) -> None:
        self.file, self.is_cached = OsFile(path), cached
        self.advised: list[int] = []
        self.probes = 0

    def cached(self, offset: int) -> bool:
        self.probes += 1
        return self.is_cached

    def advise(self, offsets, length: int) -> None:
        self.advised += list(offsets)

    def read(self, offset: int, length: int) -> bytes:
        return self.file.read(offset, length)

    def stamp(self) -> tuple[int, int]:
        return self.file.stamp()

    def close(self) -> None:
        self.file.close()


def _store(tmp_path: Path, n: int = 400):
    st = open_store(tmp_path / "s", exact_limit=50)
    col = st.collection("c", model=SpaceOnly(512))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 512)).astype(np.float32)
    col.upsert([Record(f"r{i}", "image", f"{i}.jpg", x[i]) for i in range(n)])
    st.close()  # saves the HNSW file; the rows are checkpointed into store.db
    st = open_store(tmp_path / "s", exact_limit=50)
    return st, st.collection("c"), x


def _hinted(tmp_path: Path, fake_class: type[Recording] | None = None, cached: bool = False):
    """A store of 400 rows whose read-ahead goes through a recording fake of the file."""
    st, col, x = _store(tmp_path)
    db = col.backend.db
    fake = (fake_class or Recording)(db.db_path, cached=cached)
    db.pages = RowPages(db.db_path, io=fake)
    return st, col, x, db, fake


@needs_dbstat
@pytest.mark.skipif(not OsFile.supported, reason="read-ahead hints need Linux's RWF_NOWAIT and posix_fadvise")
def test_a_search_whose_rows_are_not_cached_asks_for_the_pages_its_hits_lie_on(tmp_path: Path) -> None:
    st, col, x, db, fake = _hinted(tmp_path, cached=False)
    hits = col.search(vector=x[7], top_k=5)
    assert hits[0].id == "r7"
    with db.read() as conn:
        oracle = dict(zip([r[0] for r in conn.execute("SELECT key FROM items ORDER BY key")],
                          _sqlite_leaves(conn, "items").tolist()))
        keys = [conn.execute("SELECT key FROM items WHERE id=?", (h.id,)).fetchone()[0] for h in hits]
    assert len(set(oracle.values())) > 1  # rows on many pages: the map has to tell them apart
    size = 16384
    advised = {offset // size + 1 for offset in fake.advised}
    assert {oracle[k] for k in keys} <= advised  # every hit's page was asked for
    assert advised <= set(oracle.values())  # leaves only
    st.close()


@pytest.mark.skipif(not OsFile.supported, reason="read-ahead hints need Linux's RWF_NOWAIT and posix_fadvise")
def test_hints_stop_once_the_file_is_warm_and_start_again_when_it_is_not(tmp_path: Path) -> None:
    st, col, x, db, fake = _hinted(tmp_path, cached=True)
    reads = []
    real_read = fake.read
    fake.read = lambda offset, length: reads.append(offset) or real_read(offset, length)  # type: ignore[method-assign]
    with db.read() as conn:
        keys = [3, 150, 399]  # rows on three pages
        # until WARM_STREAK reads in a row found their first page cached, each asks for its pages (while the file is
        # cold, a first page cached says little about the others)
        asked = [db.pages.ahead(conn, keys) for _ in range(WARM_STREAK + 5)]
        assert all(a == 3 for a in asked[:WARM_STREAK]) and asked[WARM_STREAK:] == [0] * 5
        # warm: one read in WARM_CHECK_EVERY checks the cache, and the first to find it cold asks again
        probes = fake.probes
        fake.is_cached = False
        calls = 1
        while db.pages.ahead(conn, keys) == 0:
            calls += 1
        assert calls <= WARM_CHECK_EVERY and fake.probes == probes + 1
        assert db.pages.ahead(conn, keys) == 3 and fake.probes == probes + 2  # cold again: every read checks, asks
        fake.is_cached = True
        assert db.pages.ahead(conn, keys) == 3  # (until WARM_STREAK reads in a row find the file warm)
    before = len(fake.advised)
    for i in range(WARM_STREAK + 5):
        col.search(vector=x[i], top_k=5)
    assert len(fake.advised) > before  # searches ask too ...
    before = len(fake.advised)
    col.search(vector=x[0], top_k=5)
    assert len(fake.advised) == before  # ... until the file is warm
    # the map, read once for every search: the B-tree's root (its only interior page), and its first child
    # (which says the level below the root is of leaves)
    assert len(reads) == 2
    st.close()


@pytest.mark.skipif(not OsFile.supported, reason="read-ahead hints need Linux's RWF_NOWAIT and posix_fadvise")
def test_the_map_is_read_again_once_the_file_changed(tmp_path: Path) -> None:
    st, col, x, db, fake = _hinted(tmp_path, cached=False)
    col.search(vector=x[0], top_k=5)
    first = db.pages._map
    col.search(vector=x[1], top_k=5)
    assert db.pages._map is first  # the file did not change: the same map
    rng = np.random.default_rng(1)
    more = rng.standard_normal((3000, 512)).astype(np.float32)
    col.upsert([Record(f"s{i}", "image", f"s{i}.jpg", more[i]) for i in range(3000)])
    with db.read() as conn:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    col.search(vector=more[5], top_k=5)
    assert db.pages._map is not first and len(db.pages._map[2].pages) > len(first[2].pages)
    st.close()


def test_a_file_it_cannot_read_as_a_table_gives_no_hints_and_searches_go_on(tmp_path: Path) -> None:
    st, col, x = _store(tmp_path)
    db = col.backend.db

    class Garbage(Recording):
        def read(self, offset: int, length: int) -> bytes:
            return bytes([0x05]) + random.Random(offset).randbytes(length - 1)  # an interior page's type, then noise

    fake = Garbage(db.db_path, cached=False) if OsFile.supported else None
    if fake is not None:
        db.pages = RowPages(db.db_path, io=fake)
    for i in range(3):
        assert col.search(vector=x[i], top_k=3)[0].id == f"r{i}"
    if fake is not None:
        assert fake.advised == []
    st.close()


@pytest.mark.skipif(not OsFile.supported, reason="read-ahead hints need Linux's RWF_NOWAIT and posix_fadvise")
def test_a_filesystem_that_refuses_the_probe_gets_no_more_hints(tmp_path: Path) -> None:
    class Refusing(Recording):
        def cached(self, offset: int) -> bool:
            self.probes += 1
            raise OSError(95, "Operation not supported")

    st, col, x, db, fake = _hinted(tmp_path, Refusing)
    assert col.search(vector=x[0], top_k=3)[0].id == "r0"  # (the first search has no map to probe with)
    first = len(fake.advised)
    for i in range(1, 4):
        assert col.search(vector=x[i], top_k=3)[0].id == f"r{i}"
    assert fake.probes == 1 and len(fake.advised) == first  # refused once: never asked again
    st.close()


def test_read_ahead_can_be_turned_off(tmp_path: Path) -> None:
    st = open_store(tmp_path / "s", read_ahead=False)
    assert st.backend.db.pages is None
    st.close()
    st = open_store(tmp_path / "s")
    assert st.backend.db.pages is not None
    st.close()


@pytest.mark.skipif(not OsFile.supported, reason="read-ahead hints need Linux's RWF_NOWAIT and posix_fadvise")
def test_a_page_just_read_is_cached(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(1 << 16))
    file = OsFile(path)
    try:
        file.read(0, 4096)
        assert file.cached(0)
    except OSError as exc:  # a filesystem without non-blocking buffered reads: hints are then never given
        pytest.skip(f"RWF_NOWAIT unsupported here: {exc}")
    finally:
        file.close()
