"""Keyword search in Qdrant: BM25 as a named sparse vector with Qdrant's IDF modifier; and the named vectors of
the model's own sparse and multi-vector outputs.

Besides the dense vector (unnamed), a collection has up to three named vectors:
``keyword`` (below), ``sparse`` (the model's sparse output, a plain dot product)
and ``multivector`` (the model's multi-vector, with Qdrant's ``MAX_SIM``
comparator on dot products, and no HNSW graph: it only reranks candidates).

Each point carries a sparse vector ``keyword``: one entry per distinct term
(:mod:`~crossmodal.stores.keywords`), at index ``crc32(term)``, holding BM25's
term-frequency part ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / L))``. The
collection's sparse vector has ``Modifier.IDF``, so Qdrant multiplies each
query term by ``ln(1 + (N - n + 0.5) / (n + 0.5))`` from its own counts (the
same IDF as the other stores); a query is 1.0 at each of its terms' indexes.
This is BM25, as Qdrant's own ``Qdrant/bm25`` model does it, with one
difference from the other stores: Qdrant cannot know the average number of
terms per item when a point is written, so ``L`` is fixed at
:data:`AVG_TERMS` (texts of 16 terms count as average length).

Two terms whose CRC-32 is the same would share an index; every candidate is
checked against its stored terms (payload ``terms``), so such a collision
can never return an item that holds none of the query's terms.

Qdrant's full-text payload index is not used: it filters but does not score,
and qdrant-client's local mode ignores its tokenizer anyway.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from qdrant_client.http import models as qm

from ..base import CollectionInfo
from ..keywords import K1, B

__all__ = ["AVG_TERMS", "MULTI_NAME", "SPARSE_NAME", "TOKENS_NAME", "document_vector", "query_vector",
           "sparse_config", "term_index", "vectors_config"]

SPARSE_NAME = "keyword"
#: the model's sparse output, and its multi-vector
TOKENS_NAME = "sparse"
MULTI_NAME = "multivector"
AVG_TERMS = 16.0


def term_index(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


def sparse_config() -> dict[str, qm.SparseVectorParams]:
    return {SPARSE_NAME: qm.SparseVectorParams(modifier=qm.Modifier.IDF), TOKENS_NAME: qm.SparseVectorParams()}


def vectors_config(info: CollectionInfo, distance: Any, datatype: Any) -> Any:
    """The dense vector, and the multi-vector when the collection's model has one (its size is needed now)."""
    dense = qm.VectorParams(size=info.space.dim, distance=distance, datatype=datatype)
    if info.multivector_dim is None:
        return dense
    multi = qm.VectorParams(size=info.multivector_dim, distance=qm.Distance.DOT, datatype=qm.Datatype.FLOAT16,
                            multivector_config=qm.MultiVectorConfig(comparator=qm.MultiVectorComparator.MAX_SIM),
                            hnsw_config=qm.HnswConfigDiff(m=0))
    return {"": dense, MULTI_NAME: multi}


def document_vector(terms: Sequence[str]) -> qm.SparseVector:
    counts: dict[int, float] = {}
    norm = K1 * (1 - B + B * len(terms) / AVG_TERMS)
    for term, tf in Counter(terms).items():
        i = term_index(term)
        counts[i] = counts.get(i, 0.0) + tf * (K1 + 1) / (tf + norm)
    indices = sorted(counts)
    return qm.SparseVector(indices=indices, values=[counts[i] for i in indices])


def query_vector(terms: Sequence[str]) -> qm.SparseVector:
    indices = sorted({term_index(t) for t in terms})
    return qm.SparseVector(indices=indices, values=[1.0] * len(indices))
