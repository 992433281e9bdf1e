"""Rows in PostgreSQL's binary COPY format, the form every pgvector store write takes.

A batch becomes one ``bytes`` object, built with ``struct`` from the vectors'
big-endian floats, instead of psycopg adapting each value; the store COPYs it
straight into a collection's table (new ids) or into a temporary table that
is merged (ids that may exist).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InputError
from ..base import Record
from ..keywords import record_terms
from .schema import SPARSE_DIM
from .sql import check_storable, dump_metadata

__all__ = ["COLUMNS", "WRITTEN", "copy_payload", "copy_rows"]

#: the columns a payload fills, in order (then the embedding, the keyword terms and their number, and the token
#: vectors: the sparse vector, its ids, the multi-vector's bytes and its row size)
COLUMNS = "id, modality, reference, text, content_hash, source, stamp, metadata"
WRITTEN = COLUMNS + ", embedding, terms, terms_len, sparse, sparse_ids, multivector, multivector_dim"
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.Struct(">ii").pack(0, 0)
_COPY_TRAILER = struct.Struct(">h").pack(-1)
_FIELDS = struct.Struct(">h").pack(15)
_LEN = struct.Struct(">i")
_NULL = _LEN.pack(-1)
_VEC_HEAD = struct.Struct(">hh")
_INT4_OID = 23
_ARRAY_HEAD = struct.Struct(">iiiii")


def _tokens(r: Record) -> bytes:
    """The four token-vector fields of a row: ``sparsevec`` and ``integer[]`` in their binary forms (a sparsevec's
    binary indices count from 0, its text form's from 1), the multi-vector's float16 bytes and its row size."""
    if not r.sparse:
        out = [_NULL, _NULL]
    else:
        ids = sorted(r.sparse)
        if ids[0] < 0 or ids[-1] >= SPARSE_DIM:
            raise InputError(f"item {r.id!r}: sparse token ids must be from 0 to {SPARSE_DIM - 1} in pgvector, got "
                             f"{ids[-1] if ids[-1] >= SPARSE_DIM else ids[0]}", input=r.id)
        n = len(ids)
        index = struct.pack(f">{n}i", *ids)
        sparse = struct.pack(">iii", SPARSE_DIM, n, 0) + index + struct.pack(f">{n}f", *(r.sparse[i] for i in ids))
        array = _ARRAY_HEAD.pack(1, 0, _INT4_OID, n, 1) + b"".join(struct.pack(">ii", 4, i) for i in ids)
        out = [_LEN.pack(len(sparse)), sparse, _LEN.pack(len(array)), array]
    if r.multivector is None:
        out += [_NULL, _NULL]
    else:
        m = np.ascontiguousarray(r.multivector, dtype="<f2")
        if m.ndim != 2:
            raise InputError(f"item {r.id!r}: a multi-vector must be a (tokens, dim) array, got shape {m.shape}",
                             input=r.id)
        data = m.tobytes()
        out += [_LEN.pack(len(data)), data, _LEN.pack(4), _LEN.pack(m.shape[1])]
    return b"".join(out)


def _encoded(r: Record) -> tuple[bytes, ...]:
    """The text fields of a row as UTF-8 (``text`` may be None), or InputError naming the item and the field."""
    fields = (r.id, r.modality, r.reference, r.text, r.content_hash, r.source, r.stamp)
    try:
        out = tuple(b"" if f is None else f.encode("utf-8") for f in fields)
        meta = dump_metadata(r.metadata).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"item {r.id!r} holds text that is not valid Unicode ({exc.reason})", input=r.id) from exc
    if b"\x00" in b"".join(out) or b"\\u0000" in meta:
        check_storable(r)  # raises, naming the field
    return (*out, meta)


def copy_payload(records: Sequence[Record], dim: int, halfvec: bool, text_keys: Sequence[str] = ()) -> bytes:
    """Rows in PostgreSQL's binary COPY format, in the order of :data:`COLUMNS`, then the embedding and the keyword
    terms (:func:`~crossmodal.stores.keywords.record_terms`, with the metadata keys ``text_keys``)."""
    matrix = np.stack([np.asarray(r.vector, dtype=np.float32).reshape(-1) for r in records])
    if matrix.shape[1] != dim:
        raise InputError(f"vectors have {matrix.shape[1]} values, the collection holds vectors of dim {dim}")
    if not np.isfinite(matrix).all():
        raise InputError("a vector holds NaN or infinite values")
    body = matrix.astype(">f2" if halfvec else ">f4")
    if halfvec and not np.isfinite(body).all():
        raise InputError("a vector has values too large for 16-bit floats (precision=f16)")
    head = _VEC_HEAD.pack(dim, 0)
    vec_len = _LEN.pack(len(head) + body.shape[1] * body.itemsize)
    pack = _LEN.pack
    out = [_COPY_HEADER]
    four = _LEN.pack(4)
    for r, row in zip(records, body):
        rid, modality, reference, text, content_hash, source, stamp, meta = _encoded(r)
        words = record_terms(r, text_keys)
        terms = " ".join(words).encode("utf-8")
        out += (_FIELDS, pack(len(rid)), rid, pack(len(modality)), modality, pack(len(reference)), reference,
                _NULL if r.text is None else pack(len(text)) + text, pack(len(content_hash)), content_hash,
                pack(len(source)), source, pack(len(stamp)), stamp, pack(len(meta) + 1), b"\x01", meta,
                vec_len, head, row.tobytes(), pack(len(terms)), terms, four, pack(len(words)), _tokens(r))
    out.append(_COPY_TRAILER)
    return b"".join(out)


def copy_rows(conn: Any, table: str, payload: bytes) -> None:
    """COPY a :func:`copy_payload` into ``table`` (a quoted name) on ``conn``, in the caller's transaction."""
    with conn.cursor().copy(f"COPY {table} ({WRITTEN}) FROM STDIN (FORMAT BINARY)") as cp:
        cp.write(payload)
