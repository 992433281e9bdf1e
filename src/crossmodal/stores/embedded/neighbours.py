"""Near-duplicate pairs in the embedded store: every item's nearest neighbours, in batches, from the views.

Items are read in key order, a page at a time (each page its own short read
transaction, so writers and checkpoints are never held up for long); each page
is searched in one batch call: usearch's batch search on every core for an
HNSW view, one matrix product for an exact view. Candidates whose approximate
score (from the index's bf16 copies) is within :data:`MARGIN` of the threshold
are confirmed with their exact vectors from SQLite, so every pair reported has
an exact cosine of at least the threshold. Pairs are within one modality.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..base import MODALITIES
from .derived import read_snapshot, vectors_of
from .views import AnnView, dot

if TYPE_CHECKING:
    from .database import Database
    from .derived import Derived


class EmbeddedCollection(Protocol):
    """What the neighbour pages read of an embedded collection (a protocol, so no import of its module)."""

    db: Database
    cid: int
    dim: int

    def derived(self, modality: str) -> Derived: ...

__all__ = ["MARGIN", "near_pairs"]

#: approximate scores this far below the threshold are still checked exactly (bf16 copies are off by < 0.004)
MARGIN = 0.01
PAGE = 4_096


def _page(col: EmbeddedCollection, modality: str, after: int, threshold: float, neighbours: int
          ) -> tuple[int, list[tuple[int, int, float]], dict[int, str]]:
    """One page of items after key ``after``: (last key, candidate (key, key, approximate score), ids)."""
    derived = col.derived(modality)
    with col.db.read() as conn:
        rows = conn.execute("SELECT key, id, vector FROM items WHERE cid=? AND modality=? AND key>? ORDER BY key "
                            "LIMIT ?", (col.cid, modality, after, PAGE)).fetchall()
        if not rows:
            return after, [], {}
        n = int((conn.execute("SELECT n FROM counts WHERE cid=? AND modality=?", (col.cid, modality)).fetchone()
                 or [0])[0])
        keys = np.asarray([r[0] for r in rows], dtype=np.int64)
        x = vectors_of([r[2] for r in rows], col.dim)
        with derived.lock:
            view = derived.current(conn, n, read_snapshot(conn))
            count = min(neighbours + 1, len(view))
            if isinstance(view, AnnView):
                found = view.index.search(x, count, threads=os.cpu_count() or 1)
                nkeys = np.asarray(found.keys, dtype=np.int64).reshape(len(x), -1)
                scores = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(len(x), -1)
                margin = MARGIN
            else:
                all_keys, matrix = view.items()
                all_scores = x @ matrix.T
                top = np.argpartition(-all_scores, count - 1, axis=1)[:, :count]
                nkeys, scores = all_keys[top], np.take_along_axis(all_scores, top, axis=1)
                margin = 0.0
    ids = {int(r[0]): str(r[1]) for r in rows}
    cands = [(int(a), int(b), float(s)) for a, row_keys, row_scores in zip(keys, nkeys, scores)
             for b, s in zip(row_keys, row_scores) if b != a and b >= 0 and s >= threshold - margin]
    return int(keys[-1]), cands, ids


def _confirm(col: EmbeddedCollection, cands: list[tuple[int, int, float]], threshold: float
             ) -> Iterator[tuple[str, str, float]]:
    """The candidates whose exact cosine reaches the threshold, by id."""
    if not cands:
        return
    wanted = sorted({k for a, b, _ in cands for k in (a, b)})
    vec: dict[int, np.ndarray] = {}
    ids: dict[int, str] = {}
    with col.db.read() as conn:
        for start in range(0, len(wanted), 5_000):
            chunk = wanted[start:start + 5_000]
            for key, id_, blob in conn.execute(
                    f"SELECT key, id, vector FROM items WHERE key IN ({','.join('?' * len(chunk))})", chunk):
                vec[int(key)] = np.frombuffer(blob, dtype="<f4")
                ids[int(key)] = str(id_)
    for a, b, _ in cands:
        if a in vec and b in vec:
            score = float(dot(vec[a][None, :], vec[b])[0])
            if score >= threshold:
                yield ids[a], ids[b], score


def near_pairs(col: EmbeddedCollection, threshold: float, neighbours: int, modalities: Sequence[str] | None = None,
               progress: Any = None) -> Iterator[tuple[str, str, float]]:
    """See :meth:`~crossmodal.stores.base.BackendBase.near_pairs` (and the module docstring)."""
    mods = list(modalities or MODALITIES)
    with col.db.read() as conn:
        counts = dict(conn.execute("SELECT modality, n FROM counts WHERE cid=?", (col.cid,)).fetchall())
    total = sum(counts.get(m, 0) for m in mods)
    done = 0
    seen: set[tuple[int, int]] = set()
    for m in mods:
        after = 0
        while True:
            last, cands, page_ids = _page(col, m, after, threshold, neighbours)
            if not page_ids:
                break
            fresh = []
            for a, b, s in cands:
                pair = (min(a, b), max(a, b))
                if pair not in seen:
                    seen.add(pair)
                    fresh.append((pair[0], pair[1], s))
            for a_id, b_id, score in _confirm(col, fresh, threshold):
                yield (a_id, b_id, score) if a_id < b_id else (b_id, a_id, score)
            done += len(page_ids)
            after = last
            if progress is not None:
                progress(min(done, total), total)
