"""``crossmodal store check`` for the embedded store: verify SQLite, then verify and repair what is derived.

Problems (integrity faults) and housekeeping are reported apart: an HNSW file
that lags behind SQLite after a killed ingest is normal and only caught up
(a note); an HNSW file that is unreadable or disagrees with SQLite is a
problem, repaired by rebuilding it from SQLite. The filter key sets
(:mod:`~crossmodal.stores.embedded.keysets`) are checked the same way: their
answers, caught up, against a fresh build from SQLite. The keyword index (FTS5, in
``store.db``) is checked row by row against the terms of each item and
rebuilt from the items when it disagrees. Sparse postings and multi-vectors (in
``store.db`` too) must belong to existing items, once each, with sound values;
faulty rows are deleted. Faults in the source of truth
itself (a vector of the wrong length, not finite) are reported with the ids
involved; they cannot be repaired without the original files.

Leftovers of an interrupted move are a problem too: an item whose file is
gone while another item of the same modality and content comes from a file
that exists (a move stores the new item and deletes the old one in one
transaction, but a store written by an older version, or a copy of a file
deleted since, can hold both). Repairing deletes the item whose file is
gone; the item at the file's new place keeps the vector.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..base import MODALITIES, CheckReport, CollectionInfo
from ..codec import decode_text
from . import keywords
from .collection import EmbeddedCollection
from .database import Database
from .derived import read_snapshot, vectors_of
from .sqlite import attr_rows
from .views import AnnView

__all__ = ["check_store"]

#: index files younger than this that no record names may belong to a save in progress elsewhere
STRAY_AGE_S = 60.0
_PAGE = 5_000


def _problem(report: CheckReport, msg: str, repaired: bool) -> None:
    report.problems.append(msg)
    if not repaired:
        report.unresolved.append(msg)


def _list(ids: list[str], limit: int = 5) -> str:
    return ", ".join(map(repr, ids[:limit])) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _check_rows(db: Database, col: EmbeddedCollection, report: CheckReport, repair: bool) -> None:
    name, dim, normalized = col.info.name, col.dim, col.info.space.normalized
    bad_vectors: list[str] = []
    bad_attrs: list[tuple[int, str, Any]] = []
    after = 0
    while True:
        with db.read() as conn:
            rows = conn.execute("SELECT key, id, metadata, vector FROM items WHERE cid=? AND key>? ORDER BY key "
                                "LIMIT ?", (col.cid, after, _PAGE)).fetchall()
            if not rows:
                break
            keys = [r[0] for r in rows]
            stored: dict[int, Counter[tuple[Any, ...]]] = {k: Counter() for k in keys}
            marks = ",".join("?" * len(keys))
            for key, n, t, v in conn.execute(f"SELECT key, name, t, value FROM attrs WHERE key IN ({marks})", keys):
                stored[key][(n, t, v)] += 1
        for key, id_, meta, blob in rows:
            if len(blob) != dim * 4:
                bad_vectors.append(id_)
            else:
                vec = np.frombuffer(blob, dtype="<f4")
                if not np.isfinite(vec).all() or (normalized and abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3):
                    bad_vectors.append(id_)
            try:
                metadata = json.loads(meta)
            except ValueError:
                bad_vectors.append(id_)
                continue
            expected = Counter((n, t, v) for _, _, n, t, v in attr_rows(key, col.cid, metadata))
            if expected != stored[key]:
                bad_attrs.append((key, id_, metadata))
        after = rows[-1][0]
    if bad_vectors:
        msg = (f"collection {name!r}: {len(bad_vectors)} items with a damaged vector or metadata "
               f"({_list(bad_vectors)}); delete them and index their sources again")
        report.problems.append(msg)
        report.unresolved.append(msg)
    if bad_attrs:
        msg = (f"collection {name!r}: the filter index disagrees with the metadata of "
               f"{len(bad_attrs)} items ({_list([b[1] for b in bad_attrs])})")
        _problem(report, msg, repair)
        if repair:
            with db.write() as conn:
                for key, _, metadata in bad_attrs:
                    conn.execute("DELETE FROM attrs WHERE key=?", (key,))
                    conn.executemany("INSERT INTO attrs VALUES (?, ?, ?, ?, ?)", attr_rows(key, col.cid, metadata))
            report.repairs.append(f"collection {name!r}: rewrote the filter index of {len(bad_attrs)} items")


def _check_counts(db: Database, col: EmbeddedCollection, report: CheckReport, repair: bool) -> int:
    with db.read() as conn:
        actual = dict(conn.execute("SELECT modality, count(*) FROM items WHERE cid=? GROUP BY modality", (col.cid,)))
        recorded = dict(conn.execute("SELECT modality, n FROM counts WHERE cid=?", (col.cid,)))
        orphans = conn.execute("SELECT count(*) FROM attrs WHERE cid=? AND key NOT IN (SELECT key FROM items)",
                               (col.cid,)).fetchone()[0]
    if {m: n for m, n in recorded.items() if n} != actual:
        _problem(report, f"collection {col.info.name!r}: recorded counts {recorded} differ from the items {actual}",
                 repair)
        if repair:
            with db.write() as conn:
                conn.execute("DELETE FROM counts WHERE cid=?", (col.cid,))
                conn.executemany("INSERT INTO counts VALUES (?, ?, ?)", [(col.cid, m, n) for m, n in actual.items()])
            report.repairs.append(f"collection {col.info.name!r}: recounted items")
    if orphans:
        _problem(report, f"collection {col.info.name!r}: {orphans} filter rows of deleted items", repair)
        if repair:
            with db.write() as conn:
                conn.execute("DELETE FROM attrs WHERE cid=? AND key NOT IN (SELECT key FROM items)", (col.cid,))
            report.repairs.append(f"collection {col.info.name!r}: removed {orphans} stale filter rows")
    return sum(actual.values())


def _check_ann(db: Database, col: EmbeddedCollection, modality: str, report: CheckReport, repair: bool) -> None:
    derived = col.derived(modality)
    label = f"collection {col.info.name!r} ({modality})"
    with db.read() as conn:
        n = int((conn.execute("SELECT n FROM counts WHERE cid=? AND modality=?", (col.cid, modality)).fetchone()
                 or [0])[0])
        if not derived.want_ann(n):
            return
        snap = read_snapshot(conn)
        db_keys = np.asarray([k for (k,) in conn.execute("SELECT key FROM items WHERE cid=? AND modality=?",
                                                         (col.cid, modality))], dtype=np.int64)
        rng = np.random.default_rng(0)
        sample = rng.choice(db_keys, size=min(64, len(db_keys)), replace=False)
        marks = ",".join("?" * len(sample))
        truth = dict(conn.execute(f"SELECT key, vector FROM items WHERE key IN ({marks})", sample.tolist()).fetchall())
        derived.reset()
        derived.events.clear()
        with derived.lock:
            view = derived.current(conn, n, snap)
            lag = derived.changes if derived.file is not None else None
        problems = list(derived.events)
        if isinstance(view, AnnView):
            if len(view) != len(db_keys) or not view.contains(db_keys).all():
                problems.append(f"{label}: the HNSW index holds {len(view)} items, SQLite {len(db_keys)}")
            else:
                keys = np.asarray(list(truth), dtype=np.int64)
                diff = np.abs(view.vectors(keys) - vectors_of([truth[int(k)] for k in keys], col.dim)).max()
                if diff > 2e-3:
                    problems.append(f"{label}: HNSW vectors differ from SQLite by up to {diff:.3g}")
        if problems:
            for p in problems:
                _problem(report, p, repair)
            if repair:
                derived.rebuild(conn, n, snap)
    if problems and repair:
        derived.persist(db.write, 1, replace=True)
        report.repairs.append(f"{label}: rebuilt the HNSW index from SQLite ({len(db_keys)} items)")
    elif lag:
        if repair:
            derived.persist(db.write, 1)
        report.notes.append(f"{label}: HNSW index caught up with {lag} changes" + (" and saved" if repair else ""))
    elif derived.file is None and repair:
        derived.persist(db.write, 1)
        report.notes.append(f"{label}: built the HNSW index ({len(db_keys)} items)")


def _check_keysets(db: Database, col: EmbeddedCollection, report: CheckReport, repair: bool) -> None:
    keysets = col.keysets()
    label = f"collection {col.info.name!r}"
    with keysets.lock:
        keysets.reset()
        keysets.events.clear()
        with db.read() as conn:
            keysets.current(conn)
            problems = list(keysets.events)
            wrong = keysets.disagreements(conn)
        if wrong:
            problems.append(f"{label}: the filter key sets disagree with SQLite on {', '.join(wrong)}")
        for p in problems:
            _problem(report, p, repair)
        if problems and repair:
            keysets.reset()
            with db.read() as conn:
                keysets.rebuild(conn)
            keysets.persist(db.read, db.write, replace=True)
            report.repairs.append(f"{label}: rebuilt the filter key sets from SQLite ({keysets.size()} items)")
        elif keysets.changed and repair and keysets.persist(db.read, db.write):
            report.notes.append(f"{label}: filter key sets brought up to date and saved")


def _file_of(source: str, root: str | None) -> Path | None:
    """The file an item's source names (None: a URI, or a relative path without a root)."""
    if "://" in source:
        return None
    path = Path(decode_text(source))
    if path.is_absolute():
        return path
    return Path(root) / path if root else None


def _check_moves(db: Database, col: EmbeddedCollection, report: CheckReport, repair: bool) -> None:
    """Items whose file is gone, holding the content of an item whose file exists: an interrupted move's."""
    with db.read() as conn:
        rows = conn.execute(
            "SELECT modality, content_hash, id, source FROM items WHERE cid=? AND source != '' AND "
            "(modality, content_hash) IN (SELECT modality, content_hash FROM items WHERE cid=? AND source != '' "
            "AND content_hash != '' GROUP BY modality, content_hash HAVING count(DISTINCT source) > 1)",
            (col.cid, col.cid)).fetchall()
    groups: dict[tuple[str, str], list[tuple[str, str, bool | None]]] = defaultdict(list)
    for modality, content_hash, item_id, source in rows:
        path = _file_of(source, col.info.root)
        groups[(modality, content_hash)].append((item_id, source, None if path is None else os.path.lexists(path)))
    leftovers = sorted((decode_text(source), i) for members in groups.values() if any(m[2] for m in members)
                       for i, source, there in members if there is False)
    if not leftovers:
        return
    msg = (f"collection {col.info.name!r}: {len(leftovers)} items whose files are gone hold the content of items "
           f"whose files exist ({_list([f'{s} (item {i})' for s, i in leftovers])}): left by an interrupted move, "
           "or copies deleted since")
    _problem(report, msg, repair)
    if repair:
        col.delete([i for _, i in leftovers])
        report.repairs.append(f"collection {col.info.name!r}: deleted {len(leftovers)} items left by moved files")


def _strays(db: Database, report: CheckReport, repair: bool) -> None:
    with db.read() as conn:
        named = {f for (f,) in conn.execute("SELECT file FROM ann UNION ALL SELECT file FROM keysets")}
    now = time.time()
    for path in sorted(db.index_dir.iterdir()):
        if path.name in named or not path.is_file():
            continue
        if now - path.stat().st_mtime < STRAY_AGE_S:
            report.notes.append(f"left {path.name}: no record names it, but it is new (a save in progress?)")
        elif repair:
            path.unlink(missing_ok=True)
            report.notes.append(f"removed {path.name}: an index file no record names (an interrupted save)")
        else:
            report.notes.append(f"{path.name}: an index file no record names (an interrupted save)")


#: faults of the sparse postings and multi-vectors: (what, the rows at fault of collection ``cid``, the repair)
_TOKEN_FAULTS = (
    ("sparse row(s) belong to no item", "FROM sparse WHERE cid=:cid AND key NOT IN (SELECT key FROM items WHERE "
     "cid=:cid)", "deleted them"),
    ("multivec row(s) belong to no item", "FROM multivec WHERE cid=:cid AND key NOT IN (SELECT key FROM items WHERE "
     "cid=:cid)", "deleted them"),
    # a posting written twice would count its weight twice in every sparse search: the latest write is kept
    ("sparse posting(s) repeat a token of their item", "FROM sparse WHERE cid=:cid AND rowid NOT IN (SELECT "
     "max(rowid) FROM sparse WHERE cid=:cid GROUP BY key, idx)", "deleted the older copies"),
    ("sparse posting(s) have a weight that is not a positive number", "FROM sparse WHERE cid=:cid AND NOT "
     "(typeof(w) IN ('real', 'integer') AND w > 0 AND w < 1e308)", "deleted them (they add nothing to a score)"),
    ("multi-vector(s) whose bytes do not match their shape", "FROM multivec WHERE cid=:cid AND (rows < 0 OR dim < 1 "
     "OR typeof(data) != 'blob' OR length(data) != rows * dim * 2)", "deleted them (those items are reranked "
     "after the others until indexed again)"),
)


def _check_token_vectors(db: Database, col: EmbeddedCollection, report: CheckReport, repair: bool) -> None:
    """Sparse postings and multi-vectors belong to items that exist, once each, with sound values; faulty rows are
    deleted (they live in ``store.db`` beside the items, so nothing is rebuilt: what the model gave is kept)."""
    for what, rows, done in _TOKEN_FAULTS:
        with db.read() as conn:
            n = int(conn.execute(f"SELECT count(*) {rows}", {"cid": col.cid}).fetchone()[0])
        if not n:
            continue
        if repair:
            with db.write() as conn:
                conn.execute(f"DELETE {rows}", {"cid": col.cid})
            report.repairs.append(f"{col.info.name}: {n} {what}: {done}")
        _problem(report, f"{col.info.name}: {n} {what}", repair)


def _check_keywords(db: Database, col: EmbeddedCollection, report: CheckReport, repair: bool) -> None:
    """The keyword index (FTS5) holds exactly each item's terms; otherwise it is rebuilt from the items."""
    with db.read() as conn:
        found = keywords.verify(conn, col.cid, col.info.text_keys)
    if not found:
        return
    if repair:
        with db.write() as conn:
            n = keywords.rebuild(conn, col.cid, col.info.text_keys)
        report.repairs.append(f"{col.info.name}: rebuilt the keyword index from {n} items")
    for problem in found:
        _problem(report, f"{col.info.name}: {problem}", repair)


def check_store(db: Database, list_collections: Callable[[], list[CollectionInfo]],
                open_collection: Callable[[str], EmbeddedCollection], *, repair: bool = True) -> CheckReport:
    """Check (and with ``repair``, repair) the database ``db`` and its collections (see the module docstring)."""
    report = CheckReport()
    with db.read() as conn:
        result = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    if result != ["ok"]:
        _problem(report, "SQLite integrity check failed: " + "; ".join(result[:5])
                 + " (restore store.db from a backup, or index the sources again)", False)
        return report
    for info in list_collections():
        col = open_collection(info.name)
        _check_moves(db, col, report, repair)
        report.collections[info.name] = _check_counts(db, col, report, repair)
        _check_rows(db, col, report, repair)
        _check_keywords(db, col, report, repair)
        _check_token_vectors(db, col, report, repair)
        for modality in MODALITIES:
            _check_ann(db, col, modality, report, repair)
        _check_keysets(db, col, report, repair)
    _strays(db, report, repair)
    return report
