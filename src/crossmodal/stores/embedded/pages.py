"""Where the rows of ``store.db``'s items table lie, to ask the kernel for a search's rows all at once.

A search reads the ~14 rows of its best candidates by key. When those pages
are not in the page cache, SQLite reads them one after another, each a random
disk read (at a million items they are most of a cold search's time), and a
page fault on SQLite's memory map reads the device's whole readahead window
around the page (8 MiB on the benchmarks' machine), while a disk serves many
small reads asked at once much faster than one after another. So before the rows are read,
:meth:`RowPages.ahead` asks for every candidate's page at once
(``posix_fadvise`` WILLNEED): the disk reads them together, and SQLite then
finds them cached. Once the file is warm this would only cost system calls,
so each search first checks whether its first row's page is cached (a one-byte
``preadv`` with ``RWF_NOWAIT``, which fails rather than wait): after
:data:`WARM_STREAK` searches in a row found it so, searches stop asking, and
only one in :data:`WARM_CHECK_EVERY` checks again; the first that finds it
uncached starts asking again.

Which page holds a row comes from the table's B-tree: its interior pages
(about a hundred at a million items, each holding the child pages and the
largest key under each) are read from the file and kept as two sorted arrays,
leaf page by leaf page. They are only ever a hint: SQLite still reads every
row through its own B-tree, in the search's snapshot, so a stale or wrong map
costs an unneeded read, never a wrong row. The map is built again when the
file has changed since (its size or modification time: a WAL checkpoint
writes the file) and a search finds its pages uncached; a file it cannot
parse, or a platform without these calls, gives no hints at all.
"""

from __future__ import annotations

import array
import bisect
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["WARM_CHECK_EVERY", "WARM_STREAK", "FileIO", "LeafMap", "RowPages", "leaf_map"]

_LEAF, _INTERIOR = 0x0D, 0x05  # table B-tree page types
_MAX_DEPTH = 12
#: reads in a row whose first row's page was cached before the file counts as warm and searches stop asking
WARM_STREAK = 64
#: once warm, one read in this many checks the cache (a check costs ~17 us right after the HNSW searches have
#: swept the CPU caches, ~3 in a loop), so a file evicted since is noticed within this many reads
WARM_CHECK_EVERY = 16


class FileIO(Protocol):
    """The calls :class:`RowPages` makes on the database file (a fake in tests)."""

    def cached(self, offset: int) -> bool: ...

    def advise(self, offsets: Sequence[int], length: int) -> None: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def stamp(self) -> tuple[int, int]: ...

    def close(self) -> None: ...


class OsFile:
    """The database file, opened read-only for hints (Linux: ``RWF_NOWAIT`` and ``posix_fadvise``)."""

    supported = hasattr(os, "RWF_NOWAIT") and hasattr(os, "posix_fadvise") and hasattr(os, "preadv")

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._byte = bytearray(1)

    def cached(self, offset: int) -> bool:
        try:
            os.preadv(self.fd, [self._byte], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            return False
        return True

    def advise(self, offsets: Sequence[int], length: int) -> None:
        for offset in offsets:
            os.posix_fadvise(self.fd, offset, length, os.POSIX_FADV_WILLNEED)

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def stamp(self) -> tuple[int, int]:
        st = os.fstat(self.fd)
        return st.st_size, st.st_mtime_ns

    def close(self) -> None:
        os.close(self.fd)


class LeafMap:
    """The leaf pages of one table B-tree in key order: leaf ``i`` holds the keys in (``bounds[i-1]``,
    ``bounds[i]``]; the last bound is the largest int64."""

    __slots__ = ("_bound_list", "_page_list", "bounds", "pages")

    def __init__(self, bounds: np.ndarray, pages: np.ndarray) -> None:
        self.bounds, self.pages = bounds, pages
        # the same as int64 arrays of the standard library, for one key: bisect on them takes 0.6 us, numpy's
        # searchsorted on one key 1.5 (and a list of ints would take 10 MB at a million items, these 2.3)
        self._bound_list = array.array("q", bounds.astype(np.int64).tobytes())
        self._page_list = array.array("q", pages.astype(np.int64).tobytes())

    def page_of(self, key: int) -> int:
        """The leaf page number of one key."""
        return self._page_list[bisect.bisect_left(self._bound_list, key)]

    def pages_of(self, keys: Sequence[int] | np.ndarray) -> np.ndarray:
        """The leaf page number of each key (where the table held it when the map was read)."""
        return self.pages[np.searchsorted(self.bounds, np.asarray(keys, dtype=np.int64), side="left")]


def _varints(page: bytes, offsets: np.ndarray) -> np.ndarray:
    """SQLite varints (big-endian 7-bit groups, high bit = more; a 9th byte holds 8 bits) starting at ``offsets``."""
    padded = np.frombuffer(page + bytes(9), dtype=np.uint8)
    window = padded[offsets[:, None] + np.arange(9)].astype(np.uint64)
    value = np.zeros(len(offsets), dtype=np.uint64)
    going = np.ones(len(offsets), dtype=bool)
    for j in range(9):
        byte = window[:, j]
        part = byte if j == 8 else byte & np.uint64(0x7F)
        shift = np.uint64(8 if j == 8 else 7)
        value = np.where(going, (value << shift) | part, value)
        going &= (byte & np.uint64(0x80)) != 0
    return value.astype(np.int64)


def _children(page: bytes, header: int, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """(child pages, the largest key under each) of one interior table page; ``bound`` is the page's own."""
    count = int.from_bytes(page[header + 3:header + 5], "big")
    right = int.from_bytes(page[header + 8:header + 12], "big")
    cells = np.frombuffer(page, dtype=">u2", count=count, offset=header + 12).astype(np.int64)
    if count and (cells.min() < header + 12 or cells.max() + 5 > len(page)):
        raise ValueError("cell outside its page")
    bytes_ = np.frombuffer(page, dtype=np.uint8)
    child = (bytes_[cells[:, None] + np.arange(4)].astype(np.int64) << np.array([24, 16, 8, 0])).sum(axis=1)
    keys = _varints(page, cells + 4)
    pages = np.append(child, right)
    if pages.min() < 1 or (count and keys[-1] > bound) or (count > 1 and (np.diff(keys) <= 0).any()):
        raise ValueError("not an interior table page")
    return pages, np.append(keys, bound)


def leaf_map(read_page: Callable[[int], bytes], root: int) -> LeafMap:
    """The leaf pages under ``root`` of a table B-tree, read level by level through ``read_page(number)``
    (only interior pages: the first page of each level tells whether the level is of leaves). Raises
    ``ValueError`` on a page that is not what a table B-tree holds there."""
    top = np.iinfo(np.int64).max
    pages, bounds = np.array([root], dtype=np.int64), np.array([top], dtype=np.int64)
    for _ in range(_MAX_DEPTH):
        first = read_page(int(pages[0]))
        kind = first[100 if pages[0] == 1 else 0]
        if kind == _LEAF:
            return LeafMap(bounds, pages)
        if kind != _INTERIOR:
            raise ValueError(f"page {int(pages[0])} is of type {kind}, not a table page")
        level_pages, level_bounds = [], []
        for number, bound in zip(pages.tolist(), bounds.tolist()):
            page = first if number == pages[0] else read_page(number)
            header = 100 if number == 1 else 0
            if page[header] != _INTERIOR:
                raise ValueError(f"page {number} is not an interior table page")
            child, keys = _children(page, header, bound)
            level_pages.append(child)
            level_bounds.append(keys)
        pages, bounds = np.concatenate(level_pages), np.concatenate(level_bounds)
    raise ValueError(f"a table B-tree deeper than {_MAX_DEPTH} levels")


class RowPages:
    """Read-ahead hints for the rows of the items table of the database at ``path`` (see the module docstring).

    Safe to share between threads: the map is replaced whole, and a hint that fails is dropped."""

    def __init__(self, path: Path, io: FileIO | None = None, table: str = "items") -> None:
        self.path, self.table = path, table
        self._io = io
        self._map: tuple[tuple[int, int], int, LeafMap] | None = None  # (file stamp, page size, map)
        self._lock = threading.Lock()
        self._broken = False  # no hints from now on: the calls are missing or refused here, or the store closed
        self._broken_stamp: tuple[int, int] | None = None  # the file whose B-tree did not parse: none until it changes
        self._streak = 0  # reads in a row whose first row's page was cached (a race loses a count, no more)
        self._unchecked = 0  # reads since the last check of the cache, once warm

    def _file(self) -> FileIO | None:
        if self._io is None and not self._broken:
            if not OsFile.supported:
                self._broken = True
                return None
            try:
                self._io = OsFile(self.path)
            except OSError:
                self._broken = True
        return self._io

    def ahead(self, conn: sqlite3.Connection, keys: Sequence[int]) -> int:
        """Ask for the pages of the rows with ``keys`` (read next on ``conn``) unless the file is warm; the number
        of pages asked for."""
        io = self._file()
        if io is None or not keys or self._broken:
            return 0
        try:
            current = self._map
            if current is not None and self._streak >= WARM_STREAK:
                self._unchecked += 1  # warm: only one read in WARM_CHECK_EVERY checks the cache again
                if self._unchecked < WARM_CHECK_EVERY:
                    return 0
                self._unchecked = 0
            cached = current is not None and io.cached((current[2].page_of(keys[0]) - 1) * current[1])
            if cached:
                self._streak += 1
                if self._streak >= WARM_STREAK:
                    return 0
            else:
                self._streak = 0
                stamp = io.stamp()
                if current is None or current[0] != stamp:
                    current = self._rebuild(conn, io, stamp)
                    if current is None:
                        return 0
            assert current is not None
            _, size, leaves = current
            pages = np.unique(leaves.pages_of(keys))
            io.advise([(int(p) - 1) * size for p in pages], size)
            return len(pages)
        except OSError:  # the calls are refused here (a filesystem without them, or the store closed)
            self._broken = True
            return 0

    def _rebuild(self, conn: sqlite3.Connection, io: FileIO,
                 stamp: tuple[int, int]) -> tuple[tuple[int, int], int, LeafMap] | None:
        if self._broken_stamp == stamp:
            return None
        with self._lock:
            current = self._map
            if current is not None and current[0] == stamp:
                return current
            try:
                size = int(conn.execute("PRAGMA page_size").fetchone()[0])
                root = conn.execute("SELECT rootpage FROM sqlite_master WHERE type='table' AND name=?",
                                    (self.table,)).fetchone()
                if root is None:
                    raise ValueError(f"no table {self.table}")

                def read_page(number: int) -> bytes:
                    page = io.read((number - 1) * size, size)
                    if len(page) != size:
                        raise ValueError(f"page {number} is past the end of the file")
                    return page

                built = (stamp, size, leaf_map(read_page, int(root[0])))
            except (OSError, ValueError, IndexError, sqlite3.Error):
                self._broken_stamp = stamp
                return None
            self._map = built
            return built

    def close(self) -> None:
        io, self._io, self._broken = self._io, None, True
        if io is not None:
            try:
                io.close()
            except OSError:
                pass
