"""Near-duplicate pairs in the embedded store: every item's nearest neighbours, in batches, from the views.

Items are read in key order, a page at a time (each page its own short read
transaction, so writers and checkpoints are never held up for long); each page
is searched in one batch call: usearch's batch search on every core for an
HNSW view (beam width :data:`EXPANSION`), one matrix product for an exact
view. Candidates whose approximate score (from the index's bf16 copies) is
within :data:`MARGIN` of the threshold are confirmed with their exact vectors
(the page's own, as read for the search, and the other ends' from SQLite), so
every pair reported has an exact cosine of at least the threshold. Pairs are
within one modality, and each is reported once: a pair found from both ends
is remembered only until the page of its second end has gone by.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..base import MODALITIES
from .derived import read_snapshot, vectors_of
from .views import AnnView, ExactView

if TYPE_CHECKING:
    from .database import Database
    from .derived import Derived


class EmbeddedCollection(Protocol):
    """What the neighbour pages read of an embedded collection (a protocol, so no import of its module)."""

    db: Database
    cid: int
    dim: int

    def derived(self, modality: str) -> Derived: ...

__all__ = ["EXPANSION", "MARGIN", "near_pairs"]

#: approximate scores this far below the threshold are still checked exactly (bf16 copies are off by < 0.004)
MARGIN = 0.01
#: HNSW beam width of this search (widened to the number of neighbours asked for): the store's default. On the
#: clustered vectors of bench/duplicates.py at 1,000,000 items a beam of 32 missed 26 of the 35,011 links found at
#: 64 (and at 200,000 items one pair in 3,600 was missed at 24), while 64 took 182 s against 154 s for 32
EXPANSION = 64
PAGE = 4_096
#: scores computed at once when a page is scored against an exact view (64 MB of float32)
BLOCK = 16_000_000


@dataclass(frozen=True)
class _Page:
    """One page of items of a modality, in key order, and their candidate neighbours above the threshold."""

    keys: np.ndarray  # int64, ascending
    ids: list[str]
    vectors: np.ndarray  # float32, one row per key: the exact stored vectors
    lo: np.ndarray  # candidate pairs (lo < hi, each once), one end in this page
    hi: np.ndarray


def _distinct(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pairs (lo, hi) of keys ``a[i]`` and ``b[i]``, ``a[i] != b[i]``."""
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _ann_candidates(view: AnnView, keys: np.ndarray, x: np.ndarray, count: int, floor: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of a page's item and one of its ``count`` nearest in the HNSW view scored at least ``floor``."""
    view.index.expansion_search = max(EXPANSION, count)  # type: ignore[misc]
    found = view.index.search(x, count, threads=os.cpu_count() or 1)
    b = np.asarray(found.keys, dtype=np.int64).reshape(-1)
    s = 1.0 - np.asarray(found.distances, dtype=np.float32).reshape(-1)
    a = np.repeat(keys, len(b) // max(len(keys), 1))
    ok = (b != a) & (b >= 0) & (s >= floor)
    return a[ok], b[ok]


def _exact_candidates(view: ExactView, keys: np.ndarray, x: np.ndarray, count: int, floor: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The same from an exact view: every score, a block of rows at a time; only a row with more than ``count``
    scores at least ``floor`` needs its ``count`` best picked out (the rest have all of theirs among them)."""
    all_keys, matrix = view.items()
    a_out, b_out = [], []
    step = max(1, BLOCK // max(len(all_keys), 1))
    for start in range(0, len(keys), step):
        scores = x[start:start + step] @ matrix.T
        hit = scores >= floor
        crowded = np.flatnonzero(hit.sum(axis=1) > count)
        if len(crowded):
            top = np.argpartition(-scores[crowded], count - 1, axis=1)[:, :count]
            hit[crowded] = False
            hit[crowded[:, None], top] = scores[crowded[:, None], top] >= floor
        r, c = np.nonzero(hit)
        a, b = keys[start + r], all_keys[c]
        a_out.append(a[a != b])
        b_out.append(b[a != b])
    return np.concatenate(a_out), np.concatenate(b_out)


def _page(col: EmbeddedCollection, modality: str, after: int, threshold: float, neighbours: int) -> _Page | None:
    """The page of items after key ``after`` (None past the last one)."""
    derived = col.derived(modality)
    with col.db.read() as conn:
        rows = conn.execute("SELECT key, id, vector FROM items WHERE cid=? AND modality=? AND key>? ORDER BY key "
                            "LIMIT ?", (col.cid, modality, after, PAGE)).fetchall()
        if not rows:
            return None
        n = int((conn.execute("SELECT n FROM counts WHERE cid=? AND modality=?", (col.cid, modality)).fetchone()
                 or [0])[0])
        keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        x = vectors_of([r[2] for r in rows], col.dim)
        with derived.lock:
            view = derived.current(conn, n, read_snapshot(conn))
            count = min(neighbours + 1, len(view))
            if isinstance(view, AnnView):
                a, b = _ann_candidates(view, keys, x, count, threshold - MARGIN)
            else:
                a, b = _exact_candidates(view, keys, x, count, threshold)
    lo, hi = _distinct(a, b)
    return _Page(keys, [str(r[1]) for r in rows], x, lo, hi)


def _others(col: EmbeddedCollection, wanted: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(keys ascending, ids, exact vectors) of those of ``wanted`` (ascending keys) still stored."""
    keys: list[int] = []
    ids: list[str] = []
    blobs: list[bytes] = []
    with col.db.read() as conn:
        for start in range(0, len(wanted), 5_000):
            chunk = [int(k) for k in wanted[start:start + 5_000]]
            for key, id_, blob in conn.execute(f"SELECT key, id, vector FROM items WHERE key IN "
                                               f"({','.join('?' * len(chunk))}) ORDER BY key", chunk):
                keys.append(int(key))
                ids.append(str(id_))
                blobs.append(blob)
    return np.asarray(keys, dtype=np.int64), ids, vectors_of(blobs, col.dim)


def _confirm(col: EmbeddedCollection, page: _Page, lo: np.ndarray, hi: np.ndarray, threshold: float
             ) -> Iterator[tuple[str, str, float]]:
    """The pairs whose exact cosine reaches the threshold, by id: vectors of the page's items from the page, of
    the other ends from SQLite (a pair whose other end is gone by then is dropped)."""
    if not len(lo):
        return
    ends = np.unique(np.concatenate([lo, hi]))
    at = np.minimum(np.searchsorted(page.keys, ends), len(page.keys) - 1)
    mine = page.keys[at] == ends
    okeys, oids, ovec = _others(col, ends[~mine])
    there = np.searchsorted(ends, okeys)  # the other ends still stored are among ``ends``
    present = mine.copy()
    present[there] = True
    vec = np.empty((len(ends), col.dim), dtype=np.float32)
    vec[mine], vec[there] = page.vectors[at[mine]], ovec
    ids = [page.ids[k] if m else "" for k, m in zip(at.tolist(), mine.tolist())]
    for k, id_ in zip(there.tolist(), oids):
        ids[k] = id_
    i, j = np.searchsorted(ends, lo), np.searchsorted(ends, hi)
    ok = present[i] & present[j]
    i, j = i[ok], j[ok]
    scores = np.einsum("ij,ij->i", vec[i], vec[j])
    sure = scores >= threshold
    for a, b, score in zip(i[sure].tolist(), j[sure].tolist(), scores[sure].tolist()):
        yield ids[a], ids[b], score


def near_pairs(col: EmbeddedCollection, threshold: float, neighbours: int, modalities: Sequence[str] | None = None,
               progress: Any = None) -> Iterator[tuple[str, str, float]]:
    """See :meth:`~crossmodal.stores.base.BackendBase.near_pairs` (and the module docstring)."""
    mods = list(modalities or MODALITIES)
    with col.db.read() as conn:
        counts = dict(conn.execute("SELECT modality, n FROM counts WHERE cid=?", (col.cid,)).fetchall())
    total = sum(counts.get(m, 0) for m in mods)
    done = 0
    for m in mods:
        after = 0
        ahead: dict[int, set[int]] = {}  # pairs found whose second end's page is still to come: hi -> {lo}
        while (page := _page(col, m, after, threshold, neighbours)) is not None:
            first, last = int(page.keys[0]), int(page.keys[-1])
            lo, hi = page.lo, page.hi
            if ahead:  # a pair with its first end on an earlier page was confirmed there if it was found there
                back = np.flatnonzero(lo < first)
                known = [k for k in back.tolist() if int(lo[k]) in ahead.get(int(hi[k]), ())]
                if known:
                    keep = np.ones(len(lo), dtype=bool)
                    keep[known] = False
                    lo, hi = lo[keep], hi[keep]
                for k in [k for k in ahead if k <= last]:
                    del ahead[k]
            for a, b in zip(lo[hi > last].tolist(), hi[hi > last].tolist()):
                ahead.setdefault(b, set()).add(a)
            for a_id, b_id, score in _confirm(col, page, lo, hi, threshold):
                yield (a_id, b_id, score) if a_id < b_id else (b_id, a_id, score)
            done += len(page.keys)
            after = last
            if progress is not None:
                progress(min(done, total), total)
