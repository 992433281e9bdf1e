"""Records checked before a store writes them: id, modality, the vector against the space (normalized when the
space is), metadata, and the sparse and multi-vector outputs some models add."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .embedder import l2_normalize
from .errors import InputError
from .retrieval.tokens import check_sparse
from .space import Space
from .stores.base import MAX_ID_LENGTH, MODALITIES, Record, check_metadata, valid_id
from .stores.codec import encode_record

__all__ = ["check_record", "check_records"]


def _token_checked(r: Record) -> Record:
    """``r`` with its sparse vector and multi-vector (if any) checked: InputError naming the item otherwise."""
    if r.sparse is None and r.multivector is None:
        return r
    multi = r.multivector
    if multi is not None:
        multi = np.asarray(multi, dtype=np.float32)
        if multi.ndim != 2 or not np.isfinite(multi).all():
            raise InputError(f"item {r.id!r}: a multi-vector is a finite (tokens, dim) array, got shape {multi.shape}")
        multi = multi.astype(np.float16)
    return replace(r, sparse=None if r.sparse is None else check_sparse(r.sparse, f"item {r.id!r}"), multivector=multi)


def _stored(r: Record, vec: np.ndarray) -> Record:
    """``r`` with its checked vector, metadata and token vectors, encoded for a store."""
    return encode_record(replace(_token_checked(r), vector=vec, metadata=check_metadata(r.metadata),
                                 reference=str(r.reference)))


def check_records(space: Space, batch: list[Record]) -> list[Record]:
    """:func:`check_record` for a whole batch, with the vector checks and normalization done as one matrix."""
    dim = space.dim
    shapes_ok = all(isinstance(r.vector, np.ndarray) and r.vector.size == dim for r in batch)
    if not shapes_ok:
        return [check_record(space, r) for r in batch]  # the per-item path names the bad item
    if not all(valid_id(r.id) for r in batch):
        return [check_record(space, r) for r in batch]
    matrix = np.stack([r.vector.reshape(dim) for r in batch]).astype(np.float32, copy=False)  # type: ignore[union-attr]
    if not np.isfinite(matrix).all():
        return [check_record(space, r) for r in batch]
    if space.normalized:
        matrix = l2_normalize(matrix)
    out = []
    for r, vec in zip(batch, matrix):
        if r.modality not in MODALITIES:
            return [check_record(space, r) for r in batch]
        out.append(_stored(r, vec))
    return out


def check_record(space: Space, r: Record) -> Record:
    """``r`` checked (id, modality, vector against ``space``, metadata, token vectors) and encoded for a store."""
    if not valid_id(r.id):
        raise InputError(f"item id must be a non-empty string of at most {MAX_ID_LENGTH} characters of valid "
                         f"Unicode, got {r.id!r}")
    if r.modality not in MODALITIES:
        raise InputError(f"item {r.id!r}: modality must be one of {', '.join(MODALITIES)}, got {r.modality!r}")
    if r.vector is None:
        raise InputError(f"item {r.id!r} has no vector")
    vec = space.check_vectors(r.vector, what=f"the vector of item {r.id!r}")
    if vec.shape[0] != 1:
        raise InputError(f"item {r.id!r}: one vector per item, got {vec.shape[0]}")
    vec = l2_normalize(vec)[0] if space.normalized else vec[0]
    return _stored(r, vec)
