"""The sparse forms (SparseVector.to_sparsevec / to_qdrant) are taken as they are by pgvector and Qdrant."""

from __future__ import annotations

import numpy as np
import pytest

from crossmodal.runtimes.base import SparseVector

from .servers import pg_server_uri

A = SparseVector(np.asarray([0, 5, 17], dtype=np.int64), np.asarray([0.2, 1.5, 0.75], dtype=np.float32))
B = SparseVector(np.asarray([5, 9, 17], dtype=np.int64), np.asarray([2.0, 1.0, 0.5], dtype=np.float32))
DOT = 1.5 * 2.0 + 0.75 * 0.5  # the ids both hold


def test_pgvector_reads_the_sparsevec_literal() -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(pg_server_uri(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        (text, dot), = conn.execute("SELECT %s::sparsevec::text, (%s::sparsevec <#> %s::sparsevec) * -1",
                                    [A.to_sparsevec(20), A.to_sparsevec(20), B.to_sparsevec(20)]).fetchall()
        # pgvector's own text form of what it read: the same 1-based entries and dimension
        assert text == "{1:0.2,6:1.5,18:0.75}/20"
        assert dot == pytest.approx(DOT, abs=1e-6)
        dense = conn.execute("SELECT %s::sparsevec::vector::text", [A.to_sparsevec(20)]).fetchone()[0]
    got = np.asarray([float(x) for x in dense.strip("[]").split(",")], dtype=np.float32)
    want = np.zeros(20, dtype=np.float32)
    want[A.indices] = A.values  # token id t is dimension t (0-based) of the dense vector
    np.testing.assert_array_equal(got, want)


def test_qdrant_takes_the_qdrant_form() -> None:
    pytest.importorskip("qdrant_client")
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

    client = QdrantClient(location=":memory:")
    try:
        client.create_collection("s", vectors_config={}, sparse_vectors_config={"lex": qm.SparseVectorParams()})
        client.upsert("s", [qm.PointStruct(id=1, vector={"lex": qm.SparseVector(**B.to_qdrant())})])
        hits = client.query_points("s", query=qm.SparseVector(**A.to_qdrant()), using="lex").points
        assert [h.id for h in hits] == [1] and hits[0].score == pytest.approx(DOT, abs=1e-6)
    finally:
        client.close()
