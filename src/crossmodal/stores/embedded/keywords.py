"""The embedded store's keyword index: one SQLite FTS5 table per collection, inside ``store.db``.

``kw_<cid>`` holds one row per item (its rowid is the item's key) with the
item's keyword terms (:mod:`~crossmodal.stores.keywords`), written in the same
transaction as the item, so a killed process leaves the items and their
keyword index agreeing (both or neither). The terms are made in Python, so
FTS5's own tokenizer (``unicode61``) only splits them at the spaces between
them: Chinese is already in characters and pairs, file names in words.

Search is BM25 (FTS5's ``bm25()``, k1 = 1.2, b = 0.75). FTS5 returns it
negated (lower is better); the score reported is its negation, so higher is
better as for every signal. FTS5's IDF is ``ln((N - n + 0.5) / (n + 0.5))``,
floored at 1e-6 for a term in half the items or more, so common words count
for almost nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from ..keywords import document_terms

__all__ = ["create", "drop", "ensure", "match_expression", "rebuild", "remove", "search", "table", "terms_of",
           "verify", "write"]

_PAGE = 5_000


def table(cid: int) -> str:
    return f"kw_{int(cid)}"


def terms_of(modality: str, reference: str, text: str | None, metadata: Any, text_keys: Sequence[str]) -> str:
    return " ".join(document_terms(modality, reference, text, metadata, text_keys))


def exists(conn: sqlite3.Connection, cid: int) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table(cid),)).fetchone() \
        is not None


def create(conn: sqlite3.Connection, cid: int) -> None:
    # tokenchars/separators stay the default: the terms are already words, separated by single spaces
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {table(cid)} USING fts5(terms, "
                 "tokenize='unicode61 remove_diacritics 0')")


def drop(conn: sqlite3.Connection, cid: int) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {table(cid)}")


def _item_rows(conn: sqlite3.Connection, cid: int) -> Iterator[tuple[int, str, str, str | None, str]]:
    after = 0
    while True:
        rows = conn.execute("SELECT key, modality, reference, text, metadata FROM items WHERE cid=? AND key>? "
                            "ORDER BY key LIMIT ?", (cid, after, _PAGE)).fetchall()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def rebuild(conn: sqlite3.Connection, cid: int, text_keys: Sequence[str]) -> int:
    """Refill the index from the items (inside the caller's write transaction); returns the rows written."""
    create(conn, cid)
    conn.execute(f"DELETE FROM {table(cid)}")
    n = 0
    for key, modality, reference, text, metadata in _item_rows(conn, cid):
        conn.execute(f"INSERT INTO {table(cid)} (rowid, terms) VALUES (?, ?)",
                     (key, terms_of(modality, reference, text, json.loads(metadata), text_keys)))
        n += 1
    return n


def ensure(conn: sqlite3.Connection, cid: int, text_keys: Sequence[str]) -> bool:
    """Create (and fill) the index of a collection that has none (a store from before keyword search)."""
    if exists(conn, cid):
        return False
    rebuild(conn, cid, text_keys)
    return True


def write(conn: sqlite3.Connection, cid: int, key: int, terms: str) -> None:
    conn.execute(f"DELETE FROM {table(cid)} WHERE rowid=?", (key,))
    conn.execute(f"INSERT INTO {table(cid)} (rowid, terms) VALUES (?, ?)", (key, terms))


def remove(conn: sqlite3.Connection, cid: int, keys: Sequence[int]) -> None:
    for start in range(0, len(keys), _PAGE):
        chunk = list(keys[start:start + _PAGE])
        conn.execute(f"DELETE FROM {table(cid)} WHERE rowid IN ({','.join('?' * len(chunk))})", chunk)


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of ``terms``, each quoted (user text never reaches FTS5's query syntax)."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def search(conn: sqlite3.Connection, cid: int, terms: Sequence[str], top_k: int, where: str,
           params: Sequence[Any]) -> list[tuple[int, float]]:
    """(key, score) of the ``top_k`` best items by BM25 among those ``where`` (conditions on ``items``) keeps,
    best first, ties by id."""
    fts = table(cid)
    if not where:
        # unfiltered: only the items scoring at least the k-th best score (ties included) are joined for their ids
        rows = conn.execute(
            f"WITH m AS MATERIALIZED (SELECT rowid AS k, bm25({fts}) AS s FROM {fts} WHERE {fts} MATCH ?), "
            "cut AS (SELECT s FROM m ORDER BY s LIMIT 1 OFFSET ?) "
            "SELECT k, -s FROM m JOIN items ON items.key = k WHERE cid=? AND s <= coalesce((SELECT s FROM cut), 0) "
            "ORDER BY s, items.id LIMIT ?", (match_expression(terms), top_k - 1, cid, top_k)).fetchall()
        return [(int(k), float(s)) for k, s in rows]
    rows = conn.execute(
        f"SELECT k, -s FROM (SELECT rowid AS k, bm25({fts}) AS s FROM {fts} WHERE {fts} "
        f"MATCH ?) JOIN items ON items.key = k WHERE cid=?{where} ORDER BY s, items.id LIMIT ?",
        (match_expression(terms), cid, *params, top_k)).fetchall()
    return [(int(k), float(s)) for k, s in rows]


def verify(conn: sqlite3.Connection, cid: int, text_keys: Sequence[str]) -> list[str]:
    """What is wrong with the index, in words (empty: it holds exactly each item's terms)."""
    if not exists(conn, cid):
        return ["has no keyword index"]
    problems: list[str] = []
    try:
        conn.execute(f"INSERT INTO {table(cid)} ({table(cid)}, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        problems.append(f"keyword index is damaged ({exc})")
    stored = dict(conn.execute(f"SELECT rowid, terms FROM {table(cid)}").fetchall())
    wrong = missing = 0
    for key, modality, reference, text, metadata in _item_rows(conn, cid):
        have = stored.pop(key, None)
        if have is None:
            missing += 1
        elif have != terms_of(modality, reference, text, json.loads(metadata), text_keys):
            wrong += 1
    if missing:
        problems.append(f"keyword index misses {missing} item(s)")
    if wrong:
        problems.append(f"keyword index has stale terms for {wrong} item(s)")
    if stored:
        problems.append(f"keyword index has {len(stored)} row(s) of deleted items")
    return problems
