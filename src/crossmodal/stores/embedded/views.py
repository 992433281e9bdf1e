"""In-memory vector views derived from the store: exact (numpy) and approximate (usearch HNSW).

Both hold (key, vector) pairs of one modality of one collection and answer
"closest keys to q". Neither is ever the only copy of anything: the embedded
store rebuilds them from SQLite whenever they are missing, stale or damaged.

Why usearch for the approximate view: it is a dependency already, its HNSW
supports removal by key (deletes need no rebuild), it stores bf16 vectors
(half the memory of FAISS HNSW's f32, and faster to build and search than its
f16, for the same recall once candidates are rescored exactly), it saves to
and restores from one file, and adding to a loaded index is incremental,
which catching up after a crash needs.
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AnnParams", "AnnView", "ExactView", "dot", "kth_largest", "top_with_ties"]


def dot(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``matrix @ q`` on the calling thread.

    BLAS would spread one matrix-vector product over every core, which under
    concurrent queries (a server) or a busy machine costs ten times more than
    it saves; numpy's own SIMD loop keeps each query on one core.
    """
    return np.einsum("ij,j->i", matrix, q)


def kth_largest(values: np.ndarray, k: int) -> float:
    """The ``k``-th largest of ``values`` (``1 <= k <= len(values)``)."""
    return np.partition(values, len(values) - k)[len(values) - k]


def top_with_ties(keys: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best-scored keys, plus any tied with the ``k``-th (unordered), and their scores."""
    if len(keys) <= k:
        return keys, scores
    top = scores >= kth_largest(scores, k)
    return keys[top], scores[top]


class ExactView:
    """Every vector in one matrix; exact scores. Removals mark rows dead; dead rows are compacted lazily."""

    kind = "exact"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._keys = np.empty(0, dtype=np.int64)
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._alive = np.empty(0, dtype=bool)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if len(keys):
            self._pending.append((np.asarray(keys, dtype=np.int64), np.asarray(vectors, dtype=np.float32)))
            self._n += len(keys)

    def _consolidate(self) -> None:
        if self._pending:
            self._keys = np.concatenate([self._keys, *(k for k, _ in self._pending)])
            self._matrix = np.concatenate([self._matrix, *(v for _, v in self._pending)])
            self._alive = np.concatenate([self._alive, np.ones(sum(len(k) for k, _ in self._pending), dtype=bool)])
            self._pending = []
        dead = len(self._alive) - int(self._alive.sum())
        if dead and dead * 4 >= len(self._alive):
            self._keys, self._matrix = self._keys[self._alive], self._matrix[self._alive]
            self._alive = np.ones(len(self._keys), dtype=bool)

    def remove(self, keys: np.ndarray) -> None:
        if not len(keys):
            return
        self._consolidate()
        hit = np.isin(self._keys, keys) & self._alive
        self._n -= int(hit.sum())
        self._alive &= ~hit

    def keys(self) -> np.ndarray:
        self._consolidate()
        return self._keys[self._alive]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (key, vector) held, as two arrays."""
        self._consolidate()
        if self._alive.all():
            return self._keys, self._matrix
        return self._keys[self._alive], self._matrix[self._alive]

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The best ``k`` keys (plus any tied with the k-th) and their scores, among ``allowed`` keys if given."""
        self._consolidate()
        mask = self._alive if allowed is None else self._alive & np.isin(self._keys, allowed)
        keys, scores = self._keys, dot(self._matrix, q)
        if not mask.all():
            keys, scores = keys[mask], scores[mask]
        return top_with_ties(keys, scores, k)


@functools.cache
def _usearch_index() -> Any:
    """usearch's ``Index``, imported so that it cannot break other C++ libraries in the process.

    usearch's extension module carries its own static copy of libstdc++, and
    that copy exports GNU-unique symbols (the ids of the iostream locale
    facets) which bind process-wide. Loaded before the shared libstdc++, they
    win, and every C++ library loaded later (torch, for one) finds facets it
    cannot cast: each of its string streams then throws and catches, and an
    ONNX export that takes seconds takes hours. Loading the shared libstdc++
    first keeps its symbols the process-wide ones, which is also what happens
    when torch happens to be imported first.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libstdc++.so.6", mode=ctypes.RTLD_GLOBAL)
        except OSError:  # no shared libstdc++ at all: nothing can conflict with usearch's copy
            pass
    from usearch.index import Index

    return Index


@functools.cache
def _scalar_kind(name: str) -> Any:
    _usearch_index()
    from usearch.index import ScalarKind

    return getattr(ScalarKind, name)


class AnnParams:
    """HNSW parameters: graph degree, build and search beam widths, stored precision."""

    def __init__(self, connectivity: int = 16, expansion_add: int = 128, expansion_search: int = 64,
                 dtype: str = "bf16") -> None:
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        self.dtype = dtype


# Unit roundoff of the index's stored precision: usearch rounds each component to nearest, so a stored x' is
# within u |x| of x. (A precision not listed here gets no bound, and every candidate is read and rescored.)
_UNIT_ROUNDOFF = {"f64": 2.0**-53, "f32": 2.0**-24, "f16": 2.0**-11, "bf16": 2.0**-8}


def query_extent(q: np.ndarray) -> tuple[float, float]:
    """The largest magnitude of a value of ``q`` and ``q``'s norm: all :meth:`AnnView.search_error` needs of it."""
    return max(float(q.max(initial=0.0)), -float(q.min(initial=0.0))), math.sqrt(float(np.dot(q, q)))


class AnnView:
    """A usearch HNSW index over unit vectors (inner product)."""

    kind = "ann"

    def score_bounds(self, keys: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores of ``keys`` from their stored vectors, and for each a bound on its distance to the exact score.

        Each stored component is the original rounded to nearest, off by at most ``u |x_i|``. The worst case
        (every error adding up, ``u sum |x_i q_i|``) never happens: the errors of different components have
        independent signs, so their sum has a standard deviation of ``u sqrt(sum x_i^2 q_i^2 / 3)``, and the
        bound is six of those (measured at a million items: the largest error on 6,000 candidates was 0.40 of
        it, and the worst-case bound is 3.6 times wider), plus what the f32 sums may add (``dim * 2^-24`` of
        ``sum |x_i q_i|`` on each side) and f16 subnormals (under 1e-6). Candidates are pruned with it, and the
        rest rescored exactly, so going past it could only cost recall, never a wrong score; the exact score is
        the stored f32 vector's, computed the same way (see :func:`dot`).
        """
        if not len(keys):
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.float64)
        x = self.vectors(keys)
        scores = dot(x, q)
        u = self._u
        if u is None:
            return scores, np.full(len(scores), np.inf)
        spread = np.sqrt(dot(x * x, q * q) / 3)
        return scores, 6 * u * spread + 2 * self.dim * 2.0**-24 * dot(np.abs(x), np.abs(q)) + 1e-6

    def search_error(self, q: np.ndarray, norm: float, extent: tuple[float, float] | None = None) -> float | None:
        """A bound on how far each score :meth:`search` returns may be from the exact score of its stored vector,
        for stored vectors of norm at most ``norm`` (None for a precision with no bound).

        usearch rounds the query to the index's precision too, and scores the two rounded vectors (summing in
        float32): ``x'.q' - x.q = e.q + x'.f`` for the rounding errors ``e`` of the stored vector and ``f`` of
        the query. As in :meth:`score_bounds`, the errors' signs are independent, so each sum has a standard
        deviation of at most ``u sqrt(sum x_i^2 q_i^2 / 3)``, and ``sum x_i^2 q_i^2 <= norm^2 max q_i^2``
        needs no stored vector: six of those deviations for the two sums together (the largest error on 18,000
        candidates at a million items was 1.74 of them, ``bench/search_layers.py``), plus the float32 sums and
        the product of the two errors. It costs nothing per candidate (no stored copy is read); like
        :meth:`score_bounds`, going past it could only cost recall, never a wrong score. ``extent``:
        :func:`query_extent` of ``q``, when the caller has it (a search works it out once, for every view).
        """
        u = self._u
        if u is None:
            return None
        top, size = query_extent(q) if extent is None else extent
        return (6 * u * norm * top * math.sqrt(2 / 3) + u * u * norm * size
                + 2 * self.dim * 2.0**-24 * norm * size * (1 + u) ** 2 + 1e-6)

    def __init__(self, dim: int, params: AnnParams) -> None:
        Index = _usearch_index()  # noqa: N806
        self.dim = dim
        self.params = params
        self.index = Index(ndim=dim, metric="ip", dtype=params.dtype, connectivity=params.connectivity,
                           expansion_add=params.expansion_add, expansion_search=params.expansion_search)
        self._bf16 = self.index.dtype == _scalar_kind("BF16")  # (asking the index costs a microsecond a time)
        self._u = _UNIT_ROUNDOFF.get(self.index.dtype.name.lower())  # of the precision the index really holds

    def __len__(self) -> int:
        return len(self.index)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys):
            # one thread for small additions keeps the graph (and so small-collection results) deterministic
            threads = 0 if len(keys) >= 1_000 else 1
            self.index.add(np.asarray(keys, dtype=np.uint64), np.asarray(vectors, dtype=np.float32), threads=threads)

    def remove(self, keys: np.ndarray) -> None:
        if len(keys):
            self.index.remove(np.asarray(keys, dtype=np.uint64))

    def contains(self, keys: np.ndarray) -> np.ndarray:
        if not len(keys):
            return np.zeros(0, dtype=bool)
        return np.asarray(self.index.contains(np.asarray(keys, dtype=np.uint64)), dtype=bool).reshape(-1)

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """The stored copies of ``keys`` (all present), as float32.

        For a bf16 index the raw bf16 words are fetched and widened here: bf16 is the top half of a float32, so
        the result is the same, and usearch's own conversion costs ten times more (about 3 us per vector).
        """
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) and self._bf16:
            raw = self.index._compiled.get_many(keys, _scalar_kind("BF16"))
            if all(r is not None for r in raw):  # one join and one shift: np.stack of the rows costs 3x more
                words = np.frombuffer(b"".join(raw), dtype=np.uint16)
                return (words.astype(np.uint32) << 16).view(np.float32).reshape(len(keys), self.dim)
        return np.asarray(self.index.get(keys), dtype=np.float32).reshape(len(keys), self.dim)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """About the best ``k`` keys with approximate scores; the beam is widened to at least ``k``."""
        k = min(k, len(self.index))
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        self.index.expansion_search = max(self.params.expansion_search, k)  # type: ignore[misc]
        # what Index.search does for one query, without its batch bookkeeping (a tenth of a small search)
        keys, distances, counts = self.index._compiled.search_many(
            np.asarray(q, dtype=np.float32).reshape(1, -1), count=k, exact=False, threads=1,
            dtype=_scalar_kind("Unknown"))[:3]
        n = int(counts[0])
        return keys[0, :n].astype(np.int64), 1.0 - distances[0, :n].astype(np.float32, copy=False)

    def save(self, path: Path) -> None:
        self.index.save(str(path))

    @classmethod
    def load(cls, path: Path, dim: int, params: AnnParams) -> AnnView:
        Index = _usearch_index()  # noqa: N806
        view = cls.__new__(cls)
        view.dim, view.params = dim, params
        index = Index.restore(str(path))
        if index is None or index.ndim != dim:
            raise ValueError(f"{path} is not an HNSW index of dim {dim}")
        index.expansion_search = params.expansion_search  # type: ignore[misc]
        view.index = index
        view._bf16 = index.dtype == _scalar_kind("BF16")
        view._u = _UNIT_ROUNDOFF.get(index.dtype.name.lower())  # (the file's, whatever the options ask for)
        return view
