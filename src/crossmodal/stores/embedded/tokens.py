"""The embedded store's sparse vectors and multi-vectors, in ``store.db`` beside the items.

* ``sparse (key, cid, idx, w)``: one row per non-zero weight, indexed by
  ``(cid, idx)``: an inverted index in SQLite itself, so a sparse search reads
  only the postings of the query's ids and needs no derived file;
* ``multivec (key, cid, rows, dim, data)``: an item's multi-vector as float16
  bytes (``rows x dim x 2`` bytes), read only for the candidates a search
  reranks.

Both are written in the item's own transaction and deleted with it (the
``key`` is the item's), so they can never disagree with the items after a crash.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SCHEMA", "read", "read_multivectors", "remove", "search", "write"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS sparse (key INTEGER NOT NULL, cid INTEGER NOT NULL, idx INTEGER NOT NULL, w REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sparse_postings ON sparse (cid, idx, key, w);
CREATE INDEX IF NOT EXISTS sparse_key ON sparse (key);
CREATE TABLE IF NOT EXISTS multivec (key INTEGER PRIMARY KEY, cid INTEGER NOT NULL, rows INTEGER NOT NULL,
                                     dim INTEGER NOT NULL, data BLOB NOT NULL);
"""

_CHUNK = 5_000


def _marks(n: int) -> str:
    return ",".join("?" * n)


def write(conn: sqlite3.Connection, cid: int, key: int, sparse: Mapping[int, float] | None,
          multivector: np.ndarray | None) -> None:
    """Replace what item ``key`` holds."""
    conn.execute("DELETE FROM sparse WHERE key=?", (key,))
    conn.execute("DELETE FROM multivec WHERE key=?", (key,))
    if sparse:
        conn.executemany("INSERT INTO sparse VALUES (?, ?, ?, ?)", [(key, cid, int(i), float(w))
                                                                     for i, w in sparse.items()])
    if multivector is not None:
        m = np.ascontiguousarray(multivector, dtype="<f2")
        conn.execute("INSERT INTO multivec VALUES (?, ?, ?, ?, ?)", (key, cid, m.shape[0], m.shape[1], m.tobytes()))


def remove(conn: sqlite3.Connection, keys: Sequence[int]) -> None:
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start:start + _CHUNK])
        conn.execute(f"DELETE FROM sparse WHERE key IN ({_marks(len(chunk))})", chunk)
        conn.execute(f"DELETE FROM multivec WHERE key IN ({_marks(len(chunk))})", chunk)


def read(conn: sqlite3.Connection, keys: Sequence[int]) -> tuple[dict[int, dict[int, float]], dict[int, np.ndarray]]:
    """(sparse vectors, multi-vectors as float16) of the items with these keys."""
    sparse: dict[int, dict[int, float]] = {}
    multi: dict[int, np.ndarray] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start:start + _CHUNK])
        for key, idx, w in conn.execute(f"SELECT key, idx, w FROM sparse WHERE key IN ({_marks(len(chunk))}) "
                                        "ORDER BY key, idx", chunk):
            sparse.setdefault(key, {})[idx] = w
        for key, rows, dim, data in conn.execute(f"SELECT key, rows, dim, data FROM multivec WHERE key IN "
                                                 f"({_marks(len(chunk))})", chunk):
            multi[key] = np.frombuffer(data, dtype="<f2").reshape(rows, dim)
    return sparse, multi


def read_multivectors(conn: sqlite3.Connection, keys: Sequence[int]) -> dict[int, np.ndarray]:
    """The multi-vectors (float16) of the items with these keys that have one (a rerank reads only these)."""
    multi: dict[int, np.ndarray] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start:start + _CHUNK])
        for key, rows, dim, data in conn.execute(f"SELECT key, rows, dim, data FROM multivec WHERE key IN "
                                                 f"({_marks(len(chunk))})", chunk):
            multi[key] = np.frombuffer(data, dtype="<f2").reshape(rows, dim)
    return multi


def search(conn: sqlite3.Connection, cid: int, query: Mapping[int, float], top_k: int, where: str,
           params: Sequence[Any]) -> list[tuple[int, float]]:
    """(key, score) of the ``top_k`` items with the largest sparse dot product with ``query`` among those ``where``
    (conditions on ``items``) keeps, best first, ties by id."""
    pairs = [(int(i), float(w)) for i, w in query.items()]
    values = ",".join("(?, ?)" for _ in pairs)
    scored = (f"WITH q(idx, w) AS (VALUES {values}), "
              "s AS MATERIALIZED (SELECT p.key AS k, sum(p.w * q.w) AS score FROM q JOIN sparse p "
              "ON p.cid=? AND p.idx=q.idx GROUP BY p.key) ")
    args = [*[x for p in pairs for x in p], cid]
    if not where:
        # unfiltered: only the items scoring at least the k-th best score (ties included) are joined for their ids
        rows = conn.execute(
            scored + ", cut AS (SELECT score FROM s ORDER BY score DESC LIMIT 1 OFFSET ?) "
            "SELECT k, score FROM s JOIN items ON items.key = k WHERE cid=? AND score > 0 "
            "AND score >= coalesce((SELECT score FROM cut), 0) ORDER BY score DESC, items.id LIMIT ?",
            (*args, top_k - 1, cid, top_k)).fetchall()
    else:
        rows = conn.execute(scored + f"SELECT k, score FROM s JOIN items ON items.key = k WHERE cid=?{where} "
                            "AND score > 0 ORDER BY score DESC, items.id LIMIT ?", (*args, cid, *params, top_k)
                            ).fetchall()
    return [(int(k), float(s)) for k, s in rows]
