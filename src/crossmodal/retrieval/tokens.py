"""Sparse vectors and multi-vectors: what a model with those outputs adds to text and pair items, and MaxSim.

A model may have, besides its dense vectors, a **sparse** output (a weight per
vocabulary token, as BGE-M3's lexical weights) and a **multi-vector** output
(one vector per token, as ColBERT and BGE-M3's colbert head). A model says so
by having the methods of :class:`SparseOutput` / :class:`MultivectorOutput`
(and :class:`TokenOutputs`, to give both from one pass); nothing here depends
on which model it is. The collection then stores each
text and pair item's sparse vector and multi-vector (the pair's from its
caption), in stores that hold them (``holds_token_vectors``).

Multi-vectors are large: stored as float16, an item costs ``tokens x dim x 2``
bytes (BGE-M3, 1024 values per token: 2 KiB per token, about 40 KiB for a
20-token caption), against ``dim x 4`` for its dense vector.

:func:`maxsim` is ColBERT's late interaction as BGE-M3's ``compute_score``
defines it: for each query vector the best dot product with an item vector,
averaged over the query vectors (Qdrant's ``MAX_SIM`` sums instead of
averaging; the order is the same for one query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from ..stores.base import Record, maxsim

__all__ = ["MultivectorOutput", "SparseOutput", "TokenOutputs", "check_sparse", "maxsim", "multivector_dim",
           "with_token_vectors"]


@runtime_checkable
class SparseOutput(Protocol):
    def embed_sparse(self, texts: Sequence[str]) -> list[Mapping[int, float]]:
        """One {token id: weight} per text (weights > 0)."""


@runtime_checkable
class MultivectorOutput(Protocol):
    def embed_multivectors(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One (tokens, dim) array of unit rows per text."""


@runtime_checkable
class TokenOutputs(Protocol):
    def embed_token_outputs(self, texts: Sequence[str]) -> tuple[list[Mapping[int, float]], list[np.ndarray]]:
        """Both of the above in one pass: (the sparse vectors, the multi-vectors) of ``texts``."""


def check_sparse(sparse: Mapping[int, float], what: str) -> dict[int, float]:
    """A plain {int: float} with the zero weights dropped, or InputError naming ``what``."""
    out: dict[int, float] = {}
    for i, w in dict(sparse).items():
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < 2**31:
            raise InputError(f"{what}: sparse ids must be integers from 0 to 2**31-1, got {i!r}")
        w = float(w)
        if not np.isfinite(w) or w < 0:
            raise InputError(f"{what}: sparse weights must be finite and >= 0, got {w!r} for id {i}")
        if w > 0:
            out[int(i)] = w
    return out


def with_token_vectors(model: Any, records: list[Record]) -> list[Record]:
    """``records`` with the sparse vectors and multi-vectors ``model`` gives their texts (text and pair items)."""
    sparse, multi = isinstance(model, SparseOutput), isinstance(model, MultivectorOutput)
    chosen = [i for i, r in enumerate(records) if r.modality in ("text", "pair") and r.text]
    if not chosen or not (sparse or multi):
        return records
    texts = [str(records[i].text) for i in chosen]
    weights: list[Any]
    matrices: list[Any]
    if sparse and multi and isinstance(model, TokenOutputs):
        weights, matrices = model.embed_token_outputs(texts)
    else:
        weights = model.embed_sparse(texts) if sparse else [None] * len(texts)
        matrices = model.embed_multivectors(texts) if multi else [None] * len(texts)
    out = list(records)
    for i, w, m in zip(chosen, weights, matrices):
        r = out[i]
        out[i] = replace(r, sparse=None if w is None else check_sparse(w, f"item {r.id!r}"),
                         multivector=None if m is None else np.asarray(m, dtype=np.float16))
    return out


def multivector_dim(model: Any) -> int | None:
    """Values per row of ``model``'s multi-vectors (from one short text), or None when it has no such output."""
    if not isinstance(model, MultivectorOutput):
        return None
    rows = np.asarray(model.embed_multivectors(["size"])[0])
    return int(rows.shape[1]) if rows.ndim == 2 else None
