"""The SQLite side of the embedded store: schema, connections, metadata rows, filters as SQL, rows as records.

SQLite (WAL mode) is the single source of truth. Every item is one row of
``items`` holding its vector; ``attrs`` holds one row per metadata value
(a list contributes one row per element) so filters run on an index instead
of parsing JSON; ``removed`` logs deleted item keys so derived indexes catch
up incrementally; ``ann`` records which HNSW file reflects which state, and
the file's SHA-256 digest, so a file that is not the one recorded (copied
from another store, restored from another time) is never trusted.

Item keys (``items.key``) come from AUTOINCREMENT, so they grow in commit
order and are never reused: everything committed after a derived index was
built has a key above the index's ``max_key``, and a key always names the
same vector (an upsert that changes a vector writes a new row).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import StoreCorrupt, StoreUnavailable
from ..base import Record
from ..filters import And, Cond, Filter, Not, values_of
from .keysets import SCHEMA as KEYSETS_SCHEMA
from .keysets import typed_value

__all__ = ["COLUMNS", "SCHEMA_VERSION", "attr_rows", "chunks", "connect", "filter_sql", "init_schema", "marks",
           "pack_metadata", "record_of", "rows_by_keys", "unpack_metadata"]

#: 2: ``ann.digest`` (a store of schema 1 gains the column and its files' digests when first opened)
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    cid INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    info TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counts (
    cid INTEGER NOT NULL, modality TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (cid, modality)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    cid INTEGER NOT NULL,
    id TEXT NOT NULL,
    modality TEXT NOT NULL,
    reference TEXT NOT NULL,
    text TEXT,
    content_hash TEXT NOT NULL,
    source TEXT NOT NULL,
    stamp TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS items_id ON items (cid, id);
CREATE INDEX IF NOT EXISTS items_modality ON items (cid, modality, key);
CREATE TABLE IF NOT EXISTS attrs (key INTEGER NOT NULL, cid INTEGER NOT NULL, name TEXT NOT NULL,
                                  t TEXT NOT NULL, value);
CREATE INDEX IF NOT EXISTS attrs_lookup ON attrs (cid, name, t, value, key);
CREATE INDEX IF NOT EXISTS attrs_key ON attrs (key);
CREATE TABLE IF NOT EXISTS removed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, cid INTEGER NOT NULL, modality TEXT NOT NULL, key INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS removed_cm ON removed (cid, modality, seq);
CREATE TABLE IF NOT EXISTS ann (
    cid INTEGER NOT NULL, modality TEXT NOT NULL, file TEXT NOT NULL,
    max_key INTEGER NOT NULL, removed_seq INTEGER NOT NULL, size INTEGER NOT NULL, digest TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (cid, modality)
) WITHOUT ROWID;
"""


def connect(path: Path, *, read_only: bool = False, durable: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, 30 s busy timeout."""
    try:
        if read_only:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        else:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        if not read_only:
            # Only a new, empty database takes this (WAL fixes the page size). An item row holds its f32 vector (2 KiB
            # at dim 512), so 4 KiB pages hold one row each and waste half the file; 16 KiB pages hold seven:
            # 2.4 instead of 4.1 kB per item, and more of a big store in the page cache.
            conn.execute("PRAGMA page_size=16384")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreUnavailable(f"cannot put {path} in WAL mode (got {mode}); is it on a network filesystem?")
        # FULL syncs the WAL at every commit: a committed batch survives a power loss, not only a killed process.
        conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
        conn.execute("PRAGMA temp_store=MEMORY")
        # Reads map the file (the first 2 GiB: most SQLite builds cap the map there) instead of copying each 16 KiB
        # page they touch into the connection's cache: a search reads ~20 rows at random, a page each, and at a
        # million items the copies cost a tenth of a millisecond per search. Only the page cache holds the pages.
        conn.execute("PRAGMA mmap_size=2147418112")
        return conn
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise StoreCorrupt(f"{path} is not a readable crossmodal store: {exc}") from exc
        raise StoreUnavailable(f"cannot open the store database {path}: {exc}") from exc


def init_schema(conn: sqlite3.Connection) -> None:
    from .tokens import SCHEMA as TOKEN_SCHEMA

    try:
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + KEYSETS_SCHEMA + TOKEN_SCHEMA + "COMMIT;")
    except sqlite3.DatabaseError as exc:
        raise StoreCorrupt(f"cannot read the store's schema: {exc}") from exc
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is not None and int(row[0]) > SCHEMA_VERSION:
            raise StoreUnavailable(f"this store was written by a newer crossmodal (schema {row[0]} > "
                                   f"{SCHEMA_VERSION}); upgrade crossmodal to open it")
        if "digest" not in {r[1] for r in conn.execute("PRAGMA table_info(ann)")}:
            conn.execute("ALTER TABLE ann ADD COLUMN digest TEXT NOT NULL DEFAULT ''")
        if row is None or int(row[0]) < SCHEMA_VERSION:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def pack_metadata(metadata: Mapping[str, Any]) -> str:
    return json.dumps(dict(metadata), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


_DECODER = json.JSONDecoder()


def unpack_metadata(text: str) -> Any:
    """``json.loads(text)`` of what :func:`pack_metadata` wrote: its compact text goes straight to the decoder's
    ``raw_decode``, which parses a small object in half the time ``json.loads`` takes with its checks (a search
    unpacks one per hit); anything else (spaces around it, or not JSON) goes through ``json.loads``."""
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        return json.loads(text)  # (which raises the usual error)
    return value if end == len(text) else json.loads(text)


def attr_rows(key: int, cid: int, metadata: Mapping[str, Any]) -> Iterable[tuple[int, int, str, str, Any]]:
    """The ``attrs`` rows of one item: one per value, lists flattened, nulls skipped."""
    for name in metadata:
        for value in values_of(metadata, name):
            t, v = typed_value(value)
            yield key, cid, name, t, v


def _cond_sql(cond: Cond, cid: int) -> tuple[str, list[Any]]:
    base = "SELECT key FROM attrs WHERE cid=? AND name=?"
    params: list[Any] = [cid, cond.key]
    op = cond.op
    if op == "exists":
        return base, params
    if op in ("eq", "ne"):
        t, v = typed_value(cond.value)
        return base + " AND t=? AND value=?", params + [t, v]
    if op in ("in", "nin"):
        groups: dict[str, list[Any]] = {}
        for value in cond.value:
            t, v = typed_value(value)
            groups.setdefault(t, []).append(v)
        ors = []
        for t, vs in groups.items():
            ors.append(f"(t=? AND value IN ({','.join('?' * len(vs))}))")
            params += [t, *vs]
        return base + " AND (" + " OR ".join(ors) + ")", params
    t, v = typed_value(cond.value)
    sym = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return base + f" AND t=? AND value {sym} ?", params + [t, v]


def _negative(cond: Cond) -> bool:
    return cond.op in ("ne", "nin") or (cond.op == "exists" and cond.value is False)


def filter_sql(f: Filter, cid: int) -> tuple[str, list[Any]]:
    """A ``SELECT key ...`` giving the keys of the collection's items that pass ``f``.

    Each node of the tree becomes one named common table expression over the
    ones below it (``WITH f0 AS (...), f1 AS (... f0 ...) SELECT key FROM fN``),
    so the SQL is flat however deep the filter: nested subqueries would run
    into SQLite's parser stack after about a dozen levels.
    """
    if isinstance(f, Cond) and not _negative(f):
        return _cond_sql(f, cid)
    ctes: list[str] = []
    params: list[Any] = []

    def node(g: Filter) -> str:
        if isinstance(g, Cond):
            sql, p = _cond_sql(g, cid)
            if _negative(g):
                sql, p = f"SELECT key FROM items WHERE cid=? EXCEPT {sql}", [cid, *p]
        elif isinstance(g, Not):
            inner = node(g.part)
            sql, p = f"SELECT key FROM items WHERE cid=? EXCEPT SELECT key FROM {inner}", [cid]
        else:
            joiner = " INTERSECT " if isinstance(g, And) else " UNION "
            sql, p = joiner.join(f"SELECT key FROM {node(part)}" for part in g.parts), []
        name = f"f{len(ctes)}"
        ctes.append(f"{name} AS ({sql})")
        params.extend(p)
        return name

    top = node(f)
    return f"WITH {', '.join(ctes)} SELECT key FROM {top}", params


#: an item row's columns as records are read (the vector, or NULL, follows them)
COLUMNS = "key, id, modality, reference, text, content_hash, source, stamp, metadata"
_CHUNK = 5_000  # ids or keys per IN (...) list


def record_of(row: Sequence[Any], dim: int, with_vector: bool) -> Record:
    """The record of a row of ``COLUMNS`` and the vector (or NULL)."""
    vector = np.frombuffer(row[9], dtype="<f4").astype(np.float32) if with_vector else None
    if vector is not None and vector.shape != (dim,):
        raise StoreCorrupt(f"item {row[1]!r} has a vector of {vector.shape[0]} values, expected {dim}")
    # (Record's fields in their order: keyword arguments cost a quarter more, once per hit)
    return Record(row[1], row[2], row[3], vector, row[4], row[5], row[6], row[7], unpack_metadata(row[8]))


def chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def marks(n: int) -> str:
    return ",".join("?" * n)


@functools.lru_cache(maxsize=64)
def rows_by_keys(n: int) -> str:
    """The statement reading ``n`` items' rows and vectors by key (a search builds one or two a query)."""
    return f"SELECT {COLUMNS}, vector FROM items WHERE key IN ({marks(n)})"
