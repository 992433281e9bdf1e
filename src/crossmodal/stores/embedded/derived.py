"""Derived vector views kept in step with SQLite: catch-up, rebuild, persistence.

One :class:`Derived` per (collection, modality) holds a view (exact or HNSW)
plus the state it reflects: ``max_key`` (every item with a key up to it is
in the view) and ``removed_seq`` (every deletion logged up to it is applied).
Before a search it catches up to the caller's read snapshot: it adds the rows
with larger keys and removes the keys logged since. Nothing here can make
the view disagree with SQLite for longer than until the next search.

HNSW views are saved to ``index/c<cid>-<modality>-<random>.usearch`` and the
``ann`` table records which file reflects which state, with the file's
SHA-256 digest. The file is written and fsynced first, then recorded in one
transaction, then the old file is removed; a crash at any point leaves
either the old or the new file recorded, each with its true state, and at
worst a stray file that ``store check`` removes. Deletion log entries
already reflected by the recorded file are pruned; a view that still needed
them reloads the file.

A recorded file is loaded only if its digest is the recorded one (and it
holds the recorded number of items): a readable index file copied over it
from another store, or restored from another time, would otherwise be
trusted, and searches would walk a graph of other vectors. Such a file is
rebuilt from SQLite, like an unreadable one. Hashing reads the file once
more (about a second per GB, next to the load itself).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .views import AnnParams, AnnView, ExactView

__all__ = ["AnnRow", "Derived", "SearchStates", "Snapshot", "file_digest", "fsync_path", "read_snapshot",
           "record_digests", "search_state"]

log = logging.getLogger("crossmodal.stores")

#: rows read from SQLite per step while building or catching up a view
FETCH = 20_000
#: an HNSW file is rewritten once this many changes (at most) are not in it
PERSIST_MAX_LAG = 100_000


@dataclass(frozen=True)
class Snapshot:
    """The sequence counters of one read snapshot: the largest item key and deletion-log entry ever issued."""

    items: int
    removed: int


#: where the two sequence counters of a snapshot are
_SEQUENCES = "FROM sqlite_sequence WHERE name IN ('items', 'removed')"


def _snapshot_of(seqs: dict[str, Any]) -> Snapshot:
    return Snapshot(items=int(seqs.get("items", 0)), removed=int(seqs.get("removed", 0)))


def read_snapshot(conn: sqlite3.Connection) -> Snapshot:
    return _snapshot_of(dict(conn.execute(f"SELECT name, seq {_SEQUENCES}").fetchall()))


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


@dataclass(frozen=True)
class AnnRow:
    """What the ``ann`` table records about one saved HNSW file."""

    file: str
    max_key: int
    removed_seq: int
    size: int
    digest: str


def _ann_row_of(row: Sequence[Any]) -> AnnRow:
    """An ``ann`` row's (file, max_key, removed_seq, size, digest)."""
    return AnnRow(str(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4]))


def record_digests(read: Any, write: Any, index_dir: Path) -> None:
    """Record the digests of files saved before digests were recorded (a store first opened by this version)."""
    with read() as conn:
        rows = conn.execute("SELECT cid, modality, file FROM ann WHERE digest=''").fetchall()
    for cid, modality, name in rows:
        try:
            digest = file_digest(index_dir / name)
        except OSError:
            continue  # missing: rebuilt when next used
        with write() as conn:
            conn.execute("UPDATE ann SET digest=? WHERE cid=? AND modality=? AND file=? AND digest=''",
                         (digest, cid, modality, name))


_SEARCH_STATE = ("SELECT 0, modality, n, 0, 0, 0, '' FROM counts WHERE cid=?1 UNION ALL "
                 f"SELECT 1, name, seq, 0, 0, 0, '' {_SEQUENCES} UNION ALL "
                 "SELECT 2, modality, file, max_key, removed_seq, size, digest FROM ann WHERE cid=?1")


def search_state(conn: sqlite3.Connection, cid: int) -> tuple[dict[str, int], Snapshot, dict[str, AnnRow]]:
    """What a search reads first, in one statement: the collection's counts by modality, the snapshot (see
    :func:`read_snapshot`) and what the ``ann`` table records for each modality's saved HNSW file."""
    counts: dict[str, int] = {}
    seqs: dict[str, Any] = {}
    rows: dict[str, AnnRow] = {}
    for part, name, a, k, r, n, d in conn.execute(_SEARCH_STATE, (cid,)):
        if part == 0:
            counts[name] = a
        elif part == 1:
            seqs[name] = a
        else:
            rows[str(name)] = _ann_row_of((a, k, r, n, d))
    return counts, _snapshot_of(seqs), rows


class SearchStates:
    """:func:`search_state` of one collection, read again only when the database may have changed since the last
    read on the same connection: ``PRAGMA data_version`` is unchanged until another connection commits (and it
    opens the read transaction's snapshot, so it is that snapshot's), and the connection's ``total_changes`` is
    unchanged until it writes itself. A warm search asks for the version alone (the ``transaction`` step of
    ``bench/search_layers.py``: 0.007 ms, 0.017 with the statement). What it returns is shared: read only."""

    def __init__(self, cid: int) -> None:
        self.cid = cid
        # (connection, data_version, total_changes, state): one tuple, so threads never pair one connection's
        # state with another's versions; holding the connection keeps its identity from being reused
        self._last: tuple[sqlite3.Connection, int, int, tuple[dict[str, int], Snapshot, dict[str, AnnRow]]] | None
        self._last = None

    def __call__(self, conn: sqlite3.Connection) -> tuple[dict[str, int], Snapshot, dict[str, AnnRow]]:
        """The state as of ``conn``'s open read transaction (call it first in the transaction)."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        changes = conn.total_changes
        last = self._last
        if last is not None and last[0] is conn and last[1] == version and last[2] == changes:
            return last[3]
        state = search_state(conn, self.cid)
        self._last = (conn, version, changes, state)
        return state


def vectors_of(blobs: list[bytes], dim: int) -> np.ndarray:
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)


class Derived:
    """The derived view of one modality of one collection. Callers hold ``lock`` while using ``view``."""

    def __init__(self, cid: int, modality: str, dim: int, index_dir: Path, exact_limit: int, params: AnnParams) -> None:
        self.cid, self.modality, self.dim = cid, modality, dim
        self.index_dir = index_dir
        self.exact_limit = exact_limit
        self.params = params
        self.lock = threading.RLock()
        self.view: ExactView | AnnView | None = None
        self.max_key = 0
        self.removed_seq = 0
        self.file: str | None = None  # the HNSW file this view was loaded from or saved to
        self.persisted_size = 0
        self.changes = 0  # rows added or removed since load/save
        self.events: list[str] = []  # what happened out of the ordinary (for store check)
        self.bad_file: str | None = None  # a recorded file that failed to load: the next save replaces it

    # -- keeping up -------------------------------------------------------------------------------------------------

    def _ann_row(self, conn: sqlite3.Connection) -> AnnRow | None:
        row = conn.execute("SELECT file, max_key, removed_seq, size, digest FROM ann WHERE cid=? AND modality=?",
                           (self.cid, self.modality)).fetchone()
        return None if row is None else _ann_row_of(row)

    def want_ann(self, n_rows: int) -> bool:
        return n_rows > self.exact_limit

    def current(self, conn: sqlite3.Connection, n_rows: int, snap: Snapshot,
                rows: dict[str, AnnRow] | None = None) -> ExactView | AnnView:
        """The view, caught up to the snapshot of ``conn``'s open read transaction (``rows``: the collection's
        ``ann`` rows by modality, read in the same transaction, see :func:`search_state`)."""
        kind = "ann" if self.want_ann(n_rows) else "exact"
        row = self._ann_row(conn) if rows is None else rows.get(self.modality)
        view = self.view
        if view is not None and view.kind != kind:
            view = None
        if view is not None and row is not None and self.removed_seq < row.removed_seq and (
                kind == "exact" or row.file != self.file):
            view = None  # deletion log entries this view needs were pruned by a newer save: start again
        if view is None:
            view = self._fresh(kind, row, snap)
        self.view = view
        self._catch_up(conn, view, snap)
        return view

    def _fresh(self, kind: str, row: AnnRow | None, snap: Snapshot) -> ExactView | AnnView:
        self.file, self.persisted_size, self.changes = None, 0, 0
        if kind == "ann" and row is not None:
            path = self.index_dir / row.file
            try:
                view = self._load(path, row)
                self.file, self.max_key, self.removed_seq, self.persisted_size = (row.file, row.max_key,
                                                                                  row.removed_seq, len(view))
                return view
            except Exception as exc:  # a damaged, missing or foreign derived file is rebuilt, never trusted
                msg = f"HNSW file {path.name} of collection #{self.cid} ({self.modality}) {exc}; rebuilt from SQLite"
                log.warning(msg)
                self.events.append(msg)
                self.bad_file = row.file
        self.max_key, self.removed_seq = 0, snap.removed
        return AnnView(self.dim, self.params) if kind == "ann" else ExactView(self.dim)

    def _load(self, path: Path, row: AnnRow) -> AnnView:
        try:
            digest = file_digest(path)
        except OSError as exc:
            raise ValueError(f"is unreadable ({exc})") from exc
        if digest != row.digest:
            raise ValueError("does not match the file the store recorded (copied from another store, or restored "
                             "from another time?)")
        try:
            view = AnnView.load(path, self.dim, self.params)
        except Exception as exc:
            raise ValueError(f"is unreadable ({exc})") from exc
        if len(view) != row.size:
            raise ValueError(f"holds {len(view)} items, the store recorded {row.size}")
        return view

    def _catch_up(self, conn: sqlite3.Connection, view: ExactView | AnnView, snap: Snapshot) -> None:
        if snap.removed > self.removed_seq:
            keys = [k for (k,) in conn.execute(
                "SELECT key FROM removed WHERE cid=? AND modality=? AND seq>? AND seq<=?",
                (self.cid, self.modality, self.removed_seq, snap.removed))]
            view.remove(np.asarray(keys, dtype=np.int64))
            self.changes += len(keys)
            self.removed_seq = snap.removed
        while snap.items > self.max_key:
            rows = conn.execute(
                "SELECT key, vector FROM items WHERE cid=? AND modality=? AND key>? AND key<=? ORDER BY key LIMIT ?",
                (self.cid, self.modality, self.max_key, snap.items, FETCH)).fetchall()
            if not rows:
                self.max_key = snap.items
                break
            view.add(np.asarray([r[0] for r in rows], dtype=np.int64), vectors_of([r[1] for r in rows], self.dim))
            self.changes += len(rows)
            self.max_key = snap.items if len(rows) < FETCH else int(rows[-1][0])

    # -- saving -----------------------------------------------------------------------------------------------------

    def lagging(self, min_changes: int | None = None) -> bool:
        """Whether the HNSW view holds at least ``min_changes`` changes its file lacks.

        By default the bar grows with the file (half its size, at least half
        the exact-search limit, at most :data:`PERSIST_MAX_LAG`), so saving
        while ingesting costs a bounded multiple of the final file size.
        """
        if not isinstance(self.view, AnnView) or (self.changes == 0 and self.file is not None):
            return False
        if min_changes is None:
            min_changes = max(1, self.exact_limit // 2, min(self.persisted_size // 2, PERSIST_MAX_LAG))
        return self.changes >= min_changes or self.file is None

    def persist(self, write: Any, min_changes: int | None = None, *, replace: bool = False) -> bool:
        """Save the HNSW view if it lags its file (see :meth:`lagging`); ``write`` opens a write transaction.

        A recorded file at least as new is kept, unless ``replace`` (the recorded one is known to be bad).
        """
        if not self.lagging(min_changes):  # (asked again under the lock; every search asks it of every view)
            return False
        with self.lock:
            if not self.lagging(min_changes):
                return False
            view = self.view
            assert isinstance(view, AnnView)
            name = f"c{self.cid}-{self.modality}-{uuid.uuid4().hex[:12]}.usearch"
            path = self.index_dir / name
            view.save(path)
            fsync_path(path)
            fsync_path(self.index_dir)
            state = (self.max_key, self.removed_seq, len(view), file_digest(path))
            with write() as conn:
                row = self._ann_row(conn)
                replace = replace or (row is not None and row.file == self.bad_file)
                if row is not None and (row.max_key, row.removed_seq) >= state[:2] and not replace:
                    stale = True  # another process saved a state at least as new
                else:
                    stale = False
                    conn.execute("INSERT OR REPLACE INTO ann (cid, modality, file, max_key, removed_seq, size, digest) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (self.cid, self.modality, name, *state))
                    conn.execute("DELETE FROM removed WHERE cid=? AND modality=? AND seq<=?",
                                 (self.cid, self.modality, state[1]))
            if stale:
                path.unlink(missing_ok=True)
                return False
            if row is not None and row.file != name:
                (self.index_dir / row.file).unlink(missing_ok=True)
            self.file, self.persisted_size, self.changes, self.bad_file = name, state[2], 0, None
            return True

    def rebuild(self, conn: sqlite3.Connection, n_rows: int, snap: Snapshot) -> ExactView | AnnView:
        """A view built from SQLite alone, ignoring any saved file (for repairs)."""
        with self.lock:
            self.view = self._fresh("ann" if self.want_ann(n_rows) else "exact", None, snap)
            self._catch_up(conn, self.view, snap)
            return self.view

    def reset(self) -> None:
        """Forget the in-memory view; the next use loads the saved file (or builds one)."""
        with self.lock:
            self.view, self.file, self.max_key, self.removed_seq, self.changes = None, None, 0, 0, 0
