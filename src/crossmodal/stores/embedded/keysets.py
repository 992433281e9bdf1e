"""Metadata key sets: a derived index that turns a filter into the sorted keys of the items it passes.

Broad filters (a tenth of a million items) cannot be searched exactly, and
checking HNSW candidates against each one's metadata row by row reads rows
at random. This index answers "which keys of modality m pass this filter"
from memory, so the search can test HNSW candidates by binary search in a
sorted array, and search small sets exactly.

Layout (per collection): every distinct ``(name, type, value)`` of the
``attrs`` table is one group, in SQLite's order (so each name and type is a
contiguous run of groups sorted by value, and a range is a run of groups);
per modality, ``offsets``/``keys`` hold each group's sorted keys (CSR), and
``universe`` every key of the modality (for ``$ne``, ``$nin``, ``$not``).
Equality is a binary search and a slice; ranges, ``$in`` and ``$exists``
union the slices of their groups.

Keeping up with SQLite: new items have keys above ``max_key``; items deleted
or whose metadata changed in place (the key stays when the vector does) are
logged in ``attr_log``. Before answering, the index reads both, up to the
caller's read snapshot: changed keys drop out of the base arrays (``dead``)
and, with new ones, are held as ``extra`` items checked with the reference
evaluator; when the overlay grows past a fraction of the index it is rebuilt.
So a key set always equals what :func:`~crossmodal.stores.embedded.sqlite.filter_sql`
selects in the same snapshot.

Saved like the HNSW files: ``index/c<cid>-keys-<random>.npz``, written and
fsynced, then recorded (state and SHA-256 digest) in the ``keysets`` table in
one transaction, then the old file removed; log entries it reflects are
pruned. A missing, damaged or foreign file is rebuilt from SQLite.
"""

from __future__ import annotations

import bisect
import io
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..base import MODALITIES
from ..filters import And, Cond, Filter, Not, matches
from .derived import file_digest, fsync_path

__all__ = ["SCHEMA", "KeySets", "log_changed", "members"]

log = logging.getLogger("crossmodal.stores")

SCHEMA = """
CREATE TABLE IF NOT EXISTS attr_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, cid INTEGER NOT NULL,
                                     key INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS attr_log_cid ON attr_log (cid, seq);
CREATE TABLE IF NOT EXISTS keysets (cid INTEGER PRIMARY KEY, file TEXT NOT NULL, max_key INTEGER NOT NULL,
                                    log_seq INTEGER NOT NULL, size INTEGER NOT NULL, digest TEXT NOT NULL);
"""

#: the overlay is folded into a rebuilt index once it holds this fraction of the items (and at least MIN_OVERLAY)
OVERLAY_FRACTION = 1 / 16
MIN_OVERLAY = 5_000
_EMPTY = np.empty(0, dtype=np.int64)


def typed_value(value: Any) -> tuple[str, Any]:
    """A metadata scalar as the attrs table stores it: (type tag, value), booleans as 0/1."""
    if isinstance(value, bool):
        return "b", int(value)
    if isinstance(value, (int, float)):
        return "n", value
    return "s", value


def log_changed(conn: sqlite3.Connection, cid: int, keys: list[int]) -> None:
    """Record that these items' metadata changed or that they were deleted (in the writer's transaction)."""
    conn.executemany("INSERT INTO attr_log (cid, key) VALUES (?, ?)", [(cid, k) for k in keys])


def _union(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _EMPTY
    return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))


def members(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are in ``sorted_keys`` (binary search: no sort of either)."""
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


@dataclass(frozen=True)
class KeysRow:
    file: str
    max_key: int
    log_seq: int
    size: int
    digest: str


class _Base:
    """The immutable part: groups and, per modality, CSR keys and the universe."""

    def __init__(self, runs: dict[tuple[str, str], tuple[int, int]], values: list[Any],
                 offsets: dict[str, np.ndarray], keys: dict[str, np.ndarray], universe: dict[str, np.ndarray]) -> None:
        self.runs, self.values, self.offsets, self.keys, self.universe = runs, values, offsets, keys, universe

    def size(self) -> int:
        return sum(len(u) for u in self.universe.values())

    @classmethod
    def build(cls, conn: sqlite3.Connection, cid: int, max_key: int) -> _Base:
        modality_of = {m: i for i, m in enumerate(MODALITIES)}
        items = conn.execute("SELECT key, modality FROM items WHERE cid=? AND key<=? ORDER BY key",
                             (cid, max_key)).fetchall()
        all_keys = np.asarray([k for k, _ in items], dtype=np.int64)
        codes = np.asarray([modality_of.get(m, -1) for _, m in items], dtype=np.int8)
        rows = conn.execute("SELECT name, t, value, key FROM attrs WHERE cid=? AND key<=? ORDER BY name, t, value, key",
                            (cid, max_key)).fetchall()
        runs: dict[tuple[str, str], tuple[int, int]] = {}
        values: list[Any] = []
        group = np.empty(len(rows), dtype=np.int64)
        last: tuple[Any, Any, Any] | None = None
        in_order = True
        for i, (name, t, value, _) in enumerate(rows):
            if last is None or (name, t) != last[:2]:
                runs[(name, t)] = (len(values), len(values) + 1)
                values.append(value)
            elif value != last[2]:
                in_order = in_order and last[2] < value
                values.append(value)
                runs[(name, t)] = (runs[(name, t)][0], len(values))
            group[i] = len(values) - 1
            last = (name, t, value)
        if not in_order:  # SQLite and Python disagree on an order (never seen): sort in Python instead
            return cls._build_sorted(rows, all_keys, codes)
        row_keys = np.asarray([r[3] for r in rows], dtype=np.int64)
        return cls._assemble(runs, values, group, row_keys, all_keys, codes)

    @classmethod
    def _build_sorted(cls, rows: list[Any], all_keys: np.ndarray, codes: np.ndarray) -> _Base:
        rows = sorted(rows, key=lambda r: (r[0], r[1], r[2], r[3]))
        runs: dict[tuple[str, str], tuple[int, int]] = {}
        values: list[Any] = []
        group = np.empty(len(rows), dtype=np.int64)
        for i, (name, t, value, _) in enumerate(rows):
            start = runs.get((name, t), (len(values), len(values)))[0]
            if (name, t) not in runs or values[-1] != value:
                values.append(value)
            runs[(name, t)] = (start, len(values))
            group[i] = len(values) - 1
        return cls._assemble(runs, values, group, np.asarray([r[3] for r in rows], dtype=np.int64), all_keys, codes)

    @classmethod
    def _assemble(cls, runs: dict[tuple[str, str], tuple[int, int]], values: list[Any], group: np.ndarray,
                  row_keys: np.ndarray, all_keys: np.ndarray, codes: np.ndarray) -> _Base:
        if len(row_keys) > 1:  # a list holding one value twice gives two equal rows: one key per group
            keep = np.r_[True, (group[1:] != group[:-1]) | (row_keys[1:] != row_keys[:-1])]
            group, row_keys = group[keep], row_keys[keep]
        at = np.searchsorted(all_keys, row_keys)
        row_codes = codes[np.minimum(at, max(len(all_keys) - 1, 0))] if len(all_keys) else np.empty(0, np.int8)
        offsets, keys, universe = {}, {}, {}
        for i, m in enumerate(MODALITIES):
            mine = row_codes == i
            g, k = group[mine], row_keys[mine]
            offsets[m] = np.searchsorted(g, np.arange(len(values) + 1)).astype(np.int64)
            keys[m] = k
            universe[m] = all_keys[codes == i]
        return cls(runs, values, offsets, keys, universe)

    # -- saving -----------------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        header = json.dumps({"runs": [[n, t, a, b] for (n, t), (a, b) in self.runs.items()], "values": self.values},
                            ensure_ascii=False)
        arrays: dict[str, np.ndarray] = {"header": np.frombuffer(header.encode(), dtype=np.uint8)}
        for m in MODALITIES:
            arrays[f"offsets_{m}"], arrays[f"keys_{m}"], arrays[f"universe_{m}"] = (
                self.offsets[m], self.keys[m], self.universe[m])
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        path.write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> _Base:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            runs = {(n, t): (int(a), int(b)) for n, t, a, b in header["runs"]}
            values = header["values"]
            offsets = {m: data[f"offsets_{m}"].astype(np.int64) for m in MODALITIES}
            keys = {m: data[f"keys_{m}"].astype(np.int64) for m in MODALITIES}
            universe = {m: data[f"universe_{m}"].astype(np.int64) for m in MODALITIES}
        for m in MODALITIES:
            if len(offsets[m]) != len(values) + 1 or (len(values) and offsets[m][-1] != len(keys[m])):
                raise ValueError("has inconsistent arrays")
        return cls(runs, values, offsets, keys, universe)

    # -- answering --------------------------------------------------------------------------------------------------

    def _slice(self, m: str, start: int, stop: int) -> np.ndarray:
        off = self.offsets[m]
        part = self.keys[m][off[start]:off[stop]]
        return part if stop - start <= 1 else np.unique(part)

    def _positive(self, cond: Cond, m: str) -> np.ndarray:
        if cond.op == "exists":
            return _union([self._slice(m, a, b) for (n, _), (a, b) in self.runs.items() if n == cond.key])
        if cond.op in ("in", "nin"):
            return _union([self._positive(Cond(cond.key, "eq", v), m) for v in cond.value])
        t, v = typed_value(cond.value)
        run = self.runs.get((cond.key, t))
        if run is None:
            return _EMPTY
        a, b = run
        if cond.op in ("eq", "ne"):
            i = bisect.bisect_left(self.values, v, a, b)
            return self._slice(m, i, i + 1) if i < b and self.values[i] == v else _EMPTY
        lo, hi = {"gt": (bisect.bisect_right(self.values, v, a, b), b),
                  "gte": (bisect.bisect_left(self.values, v, a, b), b),
                  "lt": (a, bisect.bisect_left(self.values, v, a, b)),
                  "lte": (a, bisect.bisect_right(self.values, v, a, b))}[cond.op]
        return self._slice(m, lo, hi) if lo < hi else _EMPTY

    def evaluate(self, f: Filter, m: str) -> np.ndarray:
        """The sorted keys of modality ``m`` that pass ``f`` (on the base alone)."""
        if isinstance(f, Cond):
            positive = self._positive(f, m)
            negative = f.op in ("ne", "nin") or (f.op == "exists" and f.value is False)
            return np.setdiff1d(self.universe[m], positive, assume_unique=True) if negative else positive
        if isinstance(f, Not):
            return np.setdiff1d(self.universe[m], self.evaluate(f.part, m), assume_unique=True)
        parts = [self.evaluate(p, m) for p in f.parts]
        if isinstance(f, And):
            out = parts[0]
            for p in parts[1:]:
                out = np.intersect1d(out, p, assume_unique=True)
            return out
        return _union(parts)


class KeySets:
    """The key-set index of one collection; callers hold ``lock`` around :meth:`current` and :meth:`keys`."""

    def __init__(self, cid: int, index_dir: Path) -> None:
        self.cid, self.index_dir = cid, index_dir
        self.lock = threading.RLock()
        self.base: _Base | None = None
        self.max_key = 0
        self.log_seq = 0
        self.dead = _EMPTY
        self.extra: dict[int, tuple[str, dict[str, Any]]] = {}
        self.file: str | None = None
        self.changed = False  # differs from the saved file
        self.events: list[str] = []
        self.bad_file: str | None = None

    def _row(self, conn: sqlite3.Connection) -> KeysRow | None:
        row = conn.execute("SELECT file, max_key, log_seq, size, digest FROM keysets WHERE cid=?",
                           (self.cid,)).fetchone()
        return None if row is None else KeysRow(str(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4]))

    @staticmethod
    def _seqs(conn: sqlite3.Connection) -> tuple[int, int]:
        seqs = dict(conn.execute("SELECT name, seq FROM sqlite_sequence WHERE name IN ('items', 'attr_log')"))
        return int(seqs.get("items", 0)), int(seqs.get("attr_log", 0))

    def current(self, conn: sqlite3.Connection) -> KeySets:
        """Caught up to ``conn``'s open read transaction (loaded, caught up or rebuilt as needed)."""
        items_seq, log_seq = self._seqs(conn)
        row = self._row(conn)
        if self.base is not None and row is not None and self.log_seq < row.log_seq and row.file != self.file:
            self.base = None  # log entries this index needs were pruned by a newer save: start again
        if self.base is None and row is not None:
            self._load(row)
        if self.base is None:
            self._rebuild(conn, items_seq, log_seq)
            return self
        self._catch_up(conn, items_seq, log_seq)
        if len(self.extra) + len(self.dead) > max(MIN_OVERLAY, OVERLAY_FRACTION * self.base.size()):
            self._rebuild(conn, items_seq, log_seq)
        return self

    def _load(self, row: KeysRow) -> None:
        path = self.index_dir / row.file
        try:
            if file_digest(path) != row.digest:
                raise ValueError("does not match the file the store recorded")
            base = _Base.load(path)
            if base.size() != row.size:
                raise ValueError(f"holds {base.size()} items, the store recorded {row.size}")
        except Exception as exc:  # a damaged, missing or foreign derived file is rebuilt, never trusted
            msg = f"filter index file {row.file} of collection #{self.cid} {exc}; rebuilt from SQLite"
            log.warning(msg)
            self.events.append(msg)
            self.bad_file = row.file
            return
        self.base, self.max_key, self.log_seq, self.file = base, row.max_key, row.log_seq, row.file
        self.dead, self.extra, self.changed = _EMPTY, {}, False

    def rebuild(self, conn: sqlite3.Connection) -> None:
        """Built from SQLite alone, ignoring any saved file (for repairs)."""
        with self.lock:
            self._rebuild(conn, *self._seqs(conn))

    def _rebuild(self, conn: sqlite3.Connection, items_seq: int, log_seq: int) -> None:
        self.base = _Base.build(conn, self.cid, items_seq)
        self.max_key, self.log_seq, self.dead, self.extra, self.changed = items_seq, log_seq, _EMPTY, {}, True

    def _catch_up(self, conn: sqlite3.Connection, items_seq: int, log_seq: int) -> None:
        fresh: list[int] = []
        if log_seq > self.log_seq:
            changed = [k for (k,) in conn.execute("SELECT key FROM attr_log WHERE cid=? AND seq>? AND seq<=?",
                                                  (self.cid, self.log_seq, log_seq))]
            old = [k for k in changed if k <= self.max_key]
            if old:
                self.dead = np.union1d(self.dead, np.asarray(old, dtype=np.int64))
            for k in changed:
                self.extra.pop(k, None)
            fresh += changed
            self.log_seq = log_seq
        if items_seq > self.max_key:
            fresh += [k for (k,) in conn.execute("SELECT key FROM items WHERE cid=? AND key>? AND key<=?",
                                                 (self.cid, self.max_key, items_seq))]
            self.max_key = items_seq
        if fresh:
            self.changed = True
            unique = sorted(set(fresh))
            for start in range(0, len(unique), 5_000):
                chunk = unique[start:start + 5_000]
                for key, modality, meta in conn.execute(
                        f"SELECT key, modality, metadata FROM items WHERE key IN ({','.join('?' * len(chunk))})",
                        chunk):
                    self.extra[int(key)] = (modality, json.loads(meta))

    def keys(self, f: Filter, modality: str) -> np.ndarray:
        """The sorted keys of ``modality`` that pass ``f``, in the snapshot :meth:`current` last caught up to."""
        assert self.base is not None
        out = self.base.evaluate(f, modality)
        if len(self.dead) and len(out):
            out = out[~members(self.dead, out)]
        more = [k for k, (m, meta) in self.extra.items() if m == modality and matches(f, meta)]
        if more:
            out = np.union1d(out, np.asarray(more, dtype=np.int64))
        return out

    def size(self) -> int:
        return 0 if self.base is None else self.base.size() - len(self.dead) + len(self.extra)

    def universe(self, modality: str) -> np.ndarray:
        """Every key of ``modality``, sorted."""
        assert self.base is not None
        out = self.base.universe[modality]
        if len(self.dead):
            out = out[~members(self.dead, out)]
        more = [k for k, (m, _) in self.extra.items() if m == modality]
        return np.union1d(out, np.asarray(more, dtype=np.int64)) if more else out

    def disagreements(self, conn: sqlite3.Connection) -> list[str]:
        """What this index (caught up) answers differently from one built from SQLite now (for ``store check``)."""
        assert self.base is not None
        truth = _Base.build(conn, self.cid, self._seqs(conn)[0])
        wrong = [m for m in MODALITIES if not np.array_equal(self.universe(m), truth.universe[m])]
        if not self.extra and not len(self.dead):  # no overlay: the arrays themselves must agree
            same = (self.base.runs == truth.runs and self.base.values == truth.values
                    and all(np.array_equal(self.base.offsets[m], truth.offsets[m])
                            and np.array_equal(self.base.keys[m], truth.keys[m]) for m in MODALITIES))
            return wrong + ([] if same else ["the value groups"])
        for (name, t), (a, b) in truth.runs.items():
            for g in range(a, b):
                value = bool(truth.values[g]) if t == "b" else truth.values[g]
                for m in MODALITIES:
                    if not np.array_equal(self.keys(Cond(name, "eq", value), m), truth._slice(m, g, g + 1)):
                        return [*wrong, f"the items with {name}={value!r}"]
        return wrong

    # -- saving -----------------------------------------------------------------------------------------------------

    def persist(self, read: Callable[[], Any], write: Callable[[], Any], *, replace: bool = False) -> bool:
        """Save the index if it differs from its file (folding the overlay in first); True if saved."""
        with self.lock:
            if self.base is None or (not self.changed and self.file is not None and not replace):
                return False
            if self.extra or len(self.dead):
                with read() as conn:
                    self._rebuild(conn, *self._seqs(conn))
            assert self.base is not None
            name = f"c{self.cid}-keys-{uuid.uuid4().hex[:12]}.npz"
            path = self.index_dir / name
            self.base.save(path)
            fsync_path(path)
            fsync_path(self.index_dir)
            state = (self.max_key, self.log_seq, self.base.size(), file_digest(path))
            with write() as conn:
                row = self._row(conn)
                replace = replace or (row is not None and row.file == self.bad_file)
                stale = row is not None and (row.max_key, row.log_seq) >= state[:2] and not replace
                if not stale:
                    conn.execute("INSERT OR REPLACE INTO keysets (cid, file, max_key, log_seq, size, digest) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", (self.cid, name, *state))
                    conn.execute("DELETE FROM attr_log WHERE cid=? AND seq<=?", (self.cid, state[1]))
            if stale:
                path.unlink(missing_ok=True)
                return False
            if row is not None and row.file != name:
                (self.index_dir / row.file).unlink(missing_ok=True)
            self.file, self.changed, self.bad_file = name, False, None
            return True

    def reset(self) -> None:
        """Forget the in-memory index; the next use loads the saved file (or builds one)."""
        with self.lock:
            self.base, self.file, self.max_key, self.log_seq = None, None, 0, 0
            self.dead, self.extra, self.changed = _EMPTY, {}, False
