"""CLIP_benchmark's retrieval and zero-shot metrics, computed in chunks.

Every metric here comes from one quantity: the **rank** of a query's positive
among all candidates (0 = ranked first). A query hits at ``k`` when its rank
is below ``k``:

* ``image_retrieval_recall@k`` (text -> image): a caption hits when its image
  ranks in the top ``k`` of all images; the mean over captions;
* ``text_retrieval_recall@k`` (image -> text): an image hits when **any** of its
  captions ranks in the top ``k`` of all captions (its best caption's rank is
  below ``k``); the mean over images;
* ``acc@k`` (zero-shot): an image hits when its class ranks in the top ``k``
  of the class vectors; ``mean_per_class_recall`` is the top-1 hit rate of each
  class that has images, averaged over those classes (scikit-learn's
  ``balanced_accuracy_score``).

Scores are dot products of the (unit) vectors, computed in float64. Two
scores within :data:`TIE` of each other are a tie, and a tie goes to the
candidate that comes first in the dataset: a caption written twice ranks in
file order, and the result does not depend on how the sums were ordered.

Scores are computed a block of queries by a block of candidates at a time
(at most ``chunk`` scores at once), so 100,000 captions against 100,000
images never build a 10^10 matrix; the result is identical to the full-matrix
computation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

__all__ = [
    "retrieval_metrics",
    "DEFAULT_CHUNK",
    "TIE",
    "accuracy_at_k",
    "class_vectors",
    "mean_per_class_recall",
    "positive_ranks",
    "recall_at_k",
    "retrieval_ranks",
    "top_k",
]

#: scores closer than this are a tie (broken by dataset order)
TIE = 1e-9
#: scores held at once: 2^22 float64 = 32 MiB
DEFAULT_CHUNK = 1 << 22

Positives = Sequence[Sequence[int]] | np.ndarray


def _csr(positives: Positives, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) for one positive per query (a 1-D int array) or a sequence of positive lists."""
    if isinstance(positives, np.ndarray) and positives.ndim == 1:
        idx = positives.astype(np.int64)
        if len(idx) != n_queries:
            raise ValueError(f"{len(idx)} positives for {n_queries} queries")
        return np.arange(n_queries + 1, dtype=np.int64), idx
    if len(positives) != n_queries:
        raise ValueError(f"{len(positives)} positive lists for {n_queries} queries")
    counts = np.fromiter((len(p) for p in positives), dtype=np.int64, count=n_queries)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.fromiter((int(i) for p in positives for i in p), dtype=np.int64, count=int(indptr[-1]))
    return indptr, indices


def _blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def _block_sizes(n_queries: int, n_candidates: int, chunk: int) -> tuple[int, int]:
    chunk = max(1, int(chunk))
    cand = max(1, min(n_candidates, chunk))
    return max(1, chunk // cand), cand


def _best_positive(queries: np.ndarray, candidates: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                   chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the score and index of its best positive (ties: the first); -1 for a query without any."""
    n = len(indptr) - 1
    scores = np.empty(len(indices), dtype=np.float64)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    step = max(1, chunk // max(1, queries.shape[1]))
    for s in _blocks(len(indices), step):
        q = queries[rows[s]].astype(np.float64)
        c = candidates[indices[s]].astype(np.float64)
        scores[s] = np.einsum("ij,ij->i", q, c)
    counts = np.diff(indptr)
    if len(counts) and (counts == 1).all():  # one positive per query (text -> image, zero-shot)
        return scores, indices.copy()
    best_score = np.full(n, -np.inf)
    best_index = np.full(n, -1, dtype=np.int64)
    for i in range(n):  # a few positives per query: a Python loop over queries is cheap next to the matmuls
        lo, hi = indptr[i], indptr[i + 1]
        if lo == hi:
            continue
        own, idx = scores[lo:hi], indices[lo:hi]
        j = idx[own >= own.max() - TIE].min()
        best_index[i] = j
        best_score[i] = own[idx == j][0]
    return best_score, best_index


def positive_ranks(queries: np.ndarray, candidates: np.ndarray, positives: Positives, *,
                   chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """For each query row, the rank (0 = first) of its best positive among the candidate rows.

    ``positives`` is one candidate index per query (a 1-D int array), or one
    sequence of candidate indices per query. A query without positives gets
    rank ``len(candidates)``: it misses at every k.
    """
    queries = np.asarray(queries)
    candidates = np.asarray(candidates)
    nq, nc = len(queries), len(candidates)
    indptr, indices = _csr(positives, nq)
    if len(indices) and (indices.min() < 0 or indices.max() >= nc):
        raise ValueError(f"a positive index is outside 0..{nc - 1}")
    best_score, best_index = _best_positive(queries, candidates, indptr, indices, chunk)
    ranks = np.full(nq, nc, dtype=np.int64)
    q_size, c_size = _block_sizes(nq, nc, chunk)
    for qs in _blocks(nq, q_size):
        q = queries[qs].astype(np.float64)
        target = best_score[qs][:, None]
        first = best_index[qs][:, None]
        count = np.zeros(qs.stop - qs.start, dtype=np.int64)
        for cs in _blocks(nc, c_size):
            scores = q @ candidates[cs].astype(np.float64).T
            position = np.arange(cs.start, cs.stop)[None, :]
            tied_before = (np.abs(scores - target) <= TIE) & (position < first)
            count += np.count_nonzero((scores > target + TIE) | tied_before, axis=1)
        has = best_index[qs] >= 0
        ranks[qs] = np.where(has, count, nc)
    return ranks


def retrieval_ranks(image_vectors: np.ndarray, text_vectors: np.ndarray, text_image: np.ndarray, *,
                    chunk: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(text->image ranks, image->text ranks) for captions ``text_vectors`` of images ``image_vectors``.

    ``text_image[j]`` is the image of caption ``j``. An image's rank is its best caption's.
    """
    text_image = np.asarray(text_image, dtype=np.int64)
    captions: list[list[int]] = [[] for _ in range(len(image_vectors))]
    for j, i in enumerate(text_image.tolist()):
        captions[i].append(j)
    t2i = positive_ranks(text_vectors, image_vectors, text_image, chunk=chunk)
    i2t = positive_ranks(image_vectors, text_vectors, captions, chunk=chunk)
    return t2i, i2t


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """The share of queries whose positive ranks in the top ``k``."""
    ranks = np.asarray(ranks)
    return float(np.mean(ranks < k)) if len(ranks) else float("nan")


def accuracy_at_k(ranks: np.ndarray, k: int, n_classes: int) -> float:
    """Top-``k`` accuracy; NaN when there are fewer than ``k`` classes (as CLIP_benchmark's acc5 under 5 classes)."""
    return float("nan") if n_classes < k else recall_at_k(ranks, k)


def mean_per_class_recall(ranks: np.ndarray, labels: np.ndarray) -> float:
    """The top-1 hit rate of each class that has images, averaged over those classes."""
    labels = np.asarray(labels, dtype=np.int64)
    hit = np.asarray(ranks) == 0
    classes = np.unique(labels)
    if not len(classes):
        return float("nan")
    return float(np.mean([hit[labels == c].mean() for c in classes]))


def class_vectors(template_vectors: np.ndarray) -> np.ndarray:
    """(classes, templates, dim) unit prompt vectors -> (classes, dim): each class's normalized mean prompt."""
    vectors = np.asarray(template_vectors, dtype=np.float64)
    mean = vectors.mean(axis=1)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    return (mean / np.where(norms == 0, 1, norms)).astype(np.float32)


def top_k(queries: np.ndarray, candidates: np.ndarray, k: int, *, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """(queries, min(k, candidates)) candidate indices, best first (ties: the first candidate), in chunks."""
    queries = np.asarray(queries)
    candidates = np.asarray(candidates)
    nq, nc = len(queries), len(candidates)
    k = min(int(k), nc)
    out = np.zeros((nq, k), dtype=np.int64)
    if k == 0:
        return out
    q_size, c_size = _block_sizes(nq, nc, chunk)
    c_size = max(c_size, k)
    for qs in _blocks(nq, q_size):
        q = queries[qs].astype(np.float64)
        best_s = np.full((qs.stop - qs.start, 0), -np.inf)
        best_i = np.zeros((qs.stop - qs.start, 0), dtype=np.int64)
        for cs in _blocks(nc, c_size):
            scores = np.concatenate([best_s, q @ candidates[cs].astype(np.float64).T], axis=1)
            index = np.concatenate([best_i, np.broadcast_to(np.arange(cs.start, cs.stop), (len(q), cs.stop - cs.start))],
                                   axis=1)
            # best k by (score descending, index ascending): exact ties resolved by index
            order = np.lexsort((index, -scores), axis=1)[:, :k]
            best_s = np.take_along_axis(scores, order, axis=1)
            best_i = np.take_along_axis(index, order, axis=1)
        out[qs] = best_i
    return out


def retrieval_metrics(t2i_ranks: np.ndarray, i2t_ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """CLIP_benchmark's retrieval keys from the two rank arrays."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"image_retrieval_recall@{k}"] = recall_at_k(t2i_ranks, k)
        out[f"text_retrieval_recall@{k}"] = recall_at_k(i2t_ranks, k)
    return out
