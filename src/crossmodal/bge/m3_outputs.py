"""BGE-M3's three outputs from its raw tensors, and their scores, with numpy only.

From the graph's ``cls`` (B, H), ``token_weights`` (B, L) and ``colbert``
(B, L-1, C), as ``BGEM3FlagModel.encode`` post-processes them:

* **dense**: ``cls[:, :truncate_dim]``, L2-normalized;
* **sparse**: for each text, the weight of every token id that occurs in it,
  the largest where an id repeats; ids of the start, end, padding and unknown
  tokens are dropped, and so are weights that are not > 0. crossmodal returns
  it as :class:`SparseVector` (ascending ids, float32 weights) where the
  reference returns ``{str(id): weight}``;
* **colbert**: the first ``len - 1`` vectors of each text (every token but the
  start token, the end token included), each truncated to ``truncate_dim``
  and L2-normalized.

:func:`score_pairs` is ``compute_score``: the dense dot product, the lexical
match (sum of products of the weights of shared ids), ColBERT's MaxSim mean
(for each query vector the best passage vector, averaged over the query
vectors), and their weighted combinations.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..runtimes.base import SparseVector

__all__ = ["M3Output", "SparseVector", "colbert_score", "m3_outputs", "normalize", "score_pairs", "sparse_score"]

EPS = 1e-12


def normalize(x: np.ndarray) -> np.ndarray:
    """x / max(||x||, 1e-12) along the last axis, in float32 (torch's F.normalize)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.sum(np.square(x, dtype=np.float32), axis=-1, keepdims=True, dtype=np.float32))
    return x / np.maximum(norms, np.float32(EPS))


@dataclass(frozen=True)
class M3Output:
    dense: np.ndarray | None  # (B, D) float32, unit norm
    sparse: list[SparseVector] | None
    colbert: list[np.ndarray] | None  # per text (len - 1, C) float32, unit-norm rows


def _sparse_row(weights: np.ndarray, ids: np.ndarray, excluded: Collection[int]) -> SparseVector:
    keep = (weights > 0) & ~np.isin(ids, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))
    uniq, inverse = np.unique(ids[keep], return_inverse=True)
    best = np.zeros(len(uniq), dtype=np.float32)
    np.maximum.at(best, inverse, weights[keep].astype(np.float32))
    return SparseVector(indices=uniq.astype(np.int64), values=best)


def m3_outputs(
    raw: Sequence[np.ndarray],
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    *,
    excluded_ids: Collection[int],
    dense: bool = True,
    sparse: bool = False,
    colbert: bool = False,
    truncate_dim: int | None = None,
) -> M3Output:
    """The outputs asked for, from the graph's raw ``(cls[, token_weights, colbert])``."""
    if truncate_dim is not None and truncate_dim < 1:
        raise ConfigError(f"truncate_dim must be a positive int, got {truncate_dim}")
    if (sparse or colbert) and len(raw) < 3:
        raise ConfigError("the sparse and ColBERT outputs need the model's heads (colbert_linear.pt, sparse_linear.pt)")
    lengths = attention_mask.sum(axis=1)
    dense_out = normalize(raw[0][:, :truncate_dim]) if dense else None
    sparse_out = None
    if sparse:
        weights = np.asarray(raw[1])
        sparse_out = [_sparse_row(weights[i, :n], input_ids[i, :n], excluded_ids) for i, n in enumerate(lengths)]
    colbert_out = None
    if colbert:
        vecs = np.asarray(raw[2])
        colbert_out = [normalize(vecs[i, : n - 1, :truncate_dim]) for i, n in enumerate(lengths)]
    return M3Output(dense=dense_out, sparse=sparse_out, colbert=colbert_out)


def sparse_score(a: SparseVector, b: SparseVector) -> float:
    """Sum over the ids both hold of the product of their weights."""
    _, ia, ib = np.intersect1d(a.indices, b.indices, assume_unique=True, return_indices=True)
    return float(np.sum(a.values[ia] * b.values[ib], dtype=np.float32))


def colbert_score(query: np.ndarray, passage: np.ndarray) -> float:
    """MaxSim: each query vector's best dot product with a passage vector, averaged over the query vectors."""
    sims = query.astype(np.float32) @ passage.astype(np.float32).T
    return float(np.sum(sims.max(axis=1), dtype=np.float32) / np.float32(len(query)))


def score_pairs(queries: M3Output, passages: M3Output,
                weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, np.ndarray]:
    """``compute_score`` for pairs (queries[i], passages[i]): dense, sparse, colbert and the weighted mixes.

    ``weights`` are (dense, sparse, colbert); ``sparse+dense`` is
    ``(w0 * dense + w1 * sparse) / (w0 + w1)``, ``colbert+sparse+dense`` the
    weighted sum of all three over ``sum(weights)``.
    """
    if len(weights) != 3 or sum(weights[:2]) <= 0 or sum(weights) <= 0:
        raise ConfigError(f"weights must be three numbers (dense, sparse, colbert) with positive sums, got {weights}")
    for name in ("dense", "sparse", "colbert"):
        if getattr(queries, name) is None or getattr(passages, name) is None:
            raise ConfigError(f"score_pairs needs the {name} output of both sides")
    assert queries.dense is not None and passages.dense is not None
    assert queries.sparse is not None and passages.sparse is not None
    assert queries.colbert is not None and passages.colbert is not None
    if len(queries.dense) != len(passages.dense):
        raise ConfigError(f"{len(queries.dense)} queries but {len(passages.dense)} passages")
    dense = np.asarray(np.sum(queries.dense * passages.dense, axis=1, dtype=np.float32))
    sparse = np.array([sparse_score(q, p) for q, p in zip(queries.sparse, passages.sparse)], dtype=np.float32)
    colbert = np.array([colbert_score(q, p) for q, p in zip(queries.colbert, passages.colbert)], dtype=np.float32)
    w0, w1, w2 = (float(w) for w in weights)
    return {
        "dense": dense,
        "sparse": sparse,
        "colbert": colbert,
        "sparse+dense": ((sparse * w1 + dense * w0) / (w0 + w1)).astype(np.float32),
        "colbert+sparse+dense": ((colbert * w2 + sparse * w1 + dense * w0) / (w0 + w1 + w2)).astype(np.float32),
    }
