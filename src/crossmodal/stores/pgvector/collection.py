"""One pgvector collection: one table, its writes (binary COPY, merged upserts), reads and search.

Search: ``ORDER BY embedding <=> q LIMIT k`` with the modality and metadata
filters in the same SQL (:mod:`~crossmodal.stores.pgvector.sql`), and pgvector 0.8's
iterative index scans (``hnsw.iterative_scan = relaxed_order``) so a filter
does not starve the HNSW candidate list. Metadata-filtered searches are
planned for their own values (not prepared), and each modality set is its
own prepared statement: PostgreSQL walks the graph for a broad filter and
takes an exact index-bitmap plan for a narrow one. Vectors are
stored in the row (``STORAGE PLAIN``), so an exact plan reads one page per
item rather than a TOAST page too. When the index yields fewer rows than
asked for (a very selective filter), the query is rerun as an exact scan, so
a result is never short. Results are sorted by (score, id), the score being
the dot product (the cosine of unit vectors).

Keyword search: each row carries its keyword terms (``terms``, written in the
same COPY as the item) and their stored tsvector (``tsv``) under a GIN index, and
triggers keep the collection's term statistics in the same transaction as each
write; :meth:`PgvectorCollection.keyword` computes BM25 in SQL from them.

Writes: an upsert is one transaction. New ids are COPYed straight into the
table in PostgreSQL's binary format (:mod:`~crossmodal.stores.pgvector.copy`);
a batch that replaces items is COPYed into a temporary table and merged with
``INSERT ... ON CONFLICT DO UPDATE``, so concurrent writers of the same ids
queue on row locks instead of failing. A bulk load (:meth:`PgvectorCollection.bulk_load`)
drops the HNSW index and builds it once at the end.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from ...errors import InputError
from ..base import MODALITIES, BackendBase, CollectionInfo, Record
from ..filters import Selection
from ..keywords import K1, B, idf
from .boundary import mapped
from .copy import COLUMNS, WRITTEN, copy_payload, copy_rows
from .options import PgvectorOptions
from .schema import SPARSE_DIM, hnsw_index_sql, items_table, stats_table
from .sql import quoted, where_sql

__all__ = ["PgvectorCollection"]

_MUTABLE = ("modality", "reference", "text", "content_hash", "source", "stamp", "metadata", "embedding", "terms",
            "terms_len", "sparse", "sparse_ids", "multivector", "multivector_dim")
#: what ``get`` and ``scan`` read after the embedding when asked for vectors
_TOKENS = ", sparse, multivector, multivector_dim"
_PAGE = 1000
_RETRIES = 5


def _vector(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    return np.asarray(value.to_numpy(), dtype=np.float32)


def _multivector(data: Any, dim: Any) -> np.ndarray | None:
    if data is None:
        return None
    return np.frombuffer(bytes(data), dtype="<f2").reshape(-1, int(dim))


def _record(row: Sequence[Any], with_vector: bool) -> Record:
    tokens: dict[str, Any] = {}
    if with_vector and len(row) >= 12:  # read with _TOKENS
        sparse = row[9]
        tokens = {"sparse": None if sparse is None else dict(zip(sparse.indices(), sparse.values())),
                  "multivector": _multivector(row[10], row[11])}
    return Record(id=row[0], modality=row[1], reference=row[2], text=row[3], content_hash=row[4], source=row[5],
                  stamp=row[6], metadata=row[7] or {}, vector=_vector(row[8]) if with_vector else None, **tokens)


def _sparse_text(query: Mapping[int, float]) -> str:
    """A query in ``sparsevec``'s text form: indices from 1, so token id t is t + 1."""
    body = ",".join(f"{int(i) + 1}:{float(w)!r}" for i, w in sorted(query.items()))
    return "{" + body + "}/" + str(SPARSE_DIM)


class PgvectorCollection(BackendBase):
    """One collection: one table (see the module docstring). Its SQL is fixed text, rendered once here."""

    holds_token_vectors = True

    def __init__(self, pool: ConnectionPool, uri: str, options: PgvectorOptions, cid: int, info: CollectionInfo,
                 vector_type: str, distance: str, hnsw: dict[str, int] | None) -> None:
        self.pool = pool
        self.uri = uri
        self.options = options
        self.schema = options.schema
        self.cid = cid
        self.info = info
        self.dim = info.space.dim
        self.vector_type = vector_type
        self.distance = distance
        self.hnsw = hnsw
        self.table = quoted(self.schema, items_table(cid))
        self._write_key = zlib.crc32(f"crossmodal-write:{self.schema}:{cid}".encode())
        param = "%(q)s::halfvec" if vector_type == "halfvec" else "%(q)s::vector"  # one parameter, sent once
        order = "<=>" if distance == "cosine" else "<#>"
        # the score is the dot product, as every store reports it: 1 - cosine distance for unit vectors
        self._score = (lambda d: 1.0 - d) if distance == "cosine" else (lambda d: -d)
        self._search = (f"SELECT {COLUMNS}, NULL, embedding {order} {param} AS distance FROM {self.table} "
                        f"WHERE {{cond}} ORDER BY distance LIMIT {{limit:d}}")  # a literal limit: plans see it

    def __repr__(self) -> str:
        return f"<PgvectorCollection {self.info.name!r} {self.uri}>"

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with mapped(self.uri, self.info.name), self.pool.connection() as conn:
            yield conn

    # -- writing ------------------------------------------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> None:
        latest = {r.id: r for r in records}  # the last record of an id wins, as if upserted one by one
        if not latest:
            return
        ids = sorted(latest)  # one lock order for every writer
        payload = copy_payload([latest[i] for i in ids], self.dim, self.vector_type == "halfvec",
                               self.info.text_keys)
        with self._conn() as conn:
            exists = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE id = ANY(%s))", [ids]).fetchone()
            if not (exists and exists[0]):
                try:  # all new (a fresh load): COPY straight into the table
                    with conn.transaction():
                        self._lock_writes(conn)
                        copy_rows(conn, self.table, payload)
                    return
                except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
                    pass  # another writer inserted some of these ids meanwhile: merge instead (which retries)
            self._merge(conn, payload)

    def replace(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        """The upsert (merged) and the delete in one transaction."""
        latest = {r.id: r for r in records}
        doomed = [i for i in dict.fromkeys(ids) if i not in latest]
        if not latest:
            return self.delete(doomed) if doomed else 0
        order = sorted(latest)
        payload = copy_payload([latest[i] for i in order], self.dim, self.vector_type == "halfvec",
                               self.info.text_keys)
        with self._conn() as conn:
            return self._merge(conn, payload, doomed)

    def _lock_writes(self, conn: psycopg.Connection[Any]) -> None:
        """Writes to one collection take turns (a transaction-level advisory lock, taken before any row): every write
        updates the term statistics (the item count at least), so concurrent writers would wait on those rows anyway,
        and, taking them in different orders, deadlock."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [self._write_key])

    def _merge(self, conn: psycopg.Connection[Any], payload: bytes, delete: Sequence[str] = ()) -> int:
        """COPY into a temporary table, then INSERT ... ON CONFLICT DO UPDATE: replaces rows atomically, and
        concurrent writers of the same ids wait for each other instead of failing. The rows with ids in ``delete``
        go in the same transaction; returns how many did."""
        tmp = quoted(f"upsert_{self.cid}")
        assign = ", ".join(f"{c} = EXCLUDED.{c}" for c in _MUTABLE)
        for attempt in range(_RETRIES):
            try:
                with conn.transaction():
                    self._lock_writes(conn)
                    conn.execute(f"CREATE TEMP TABLE {tmp} (LIKE {self.table} INCLUDING DEFAULTS) ON COMMIT DROP")
                    copy_rows(conn, tmp, payload)
                    conn.execute(f"INSERT INTO {self.table} ({WRITTEN}) SELECT {WRITTEN} FROM {tmp} ORDER BY id "
                                 f"ON CONFLICT (id) DO UPDATE SET {assign}")
                    gone = conn.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", [list(delete)]).rowcount \
                        if delete else 0
                return max(gone, 0)
            except psycopg.errors.DeadlockDetected:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        if ids is not None:
            stmt, params = f"DELETE FROM {self.table} WHERE id = ANY(%s)", [list(dict.fromkeys(ids))]
        else:
            cond, params = where_sql(selection)
            stmt = f"DELETE FROM {self.table} WHERE {cond}"
        with self._conn() as conn:
            for attempt in range(_RETRIES):
                try:
                    with conn.transaction():
                        self._lock_writes(conn)
                        return max(conn.execute(stmt, params).rowcount, 0)
                except psycopg.errors.DeadlockDetected:
                    if attempt == _RETRIES - 1:
                        raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Bulk loading: drop the HNSW index, and rebuild it once at the end (much faster than per row).

        Searches stay correct meanwhile (exact scans). If the process dies
        before the end, ``store check`` rebuilds the missing index.
        """
        if self.hnsw is None:
            yield
            self._vacuum()
            return
        with self._conn() as conn:
            conn.execute(f"DROP INDEX IF EXISTS {quoted(self.schema, items_table(self.cid) + '_hnsw')}")
        try:
            yield
        finally:
            self.build_index()
        self._vacuum()

    def _vacuum(self) -> None:
        """VACUUM after a bulk load: it marks the pages all-visible, so keyword search's item count and average
        length are an index-only scan at once (autovacuum would do it too, a while later)."""
        with self._conn() as conn:
            conn.execute(f"VACUUM (ANALYZE) {self.table}")

    def build_index(self) -> None:
        """Create the HNSW index if it is missing (memory for the build: ``maintenance_work_mem``)."""
        if self.hnsw is None:
            return
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", [self.options.maintenance_work_mem])
            conn.execute(hnsw_index_sql(self.schema, self.cid, self.vector_type, self.distance, self.hnsw))
            conn.execute(f"ANALYZE {self.table}")  # fresh statistics, so the planner weighs filters right

    # -- reading ------------------------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        vec = "embedding" + _TOKENS if vectors else "NULL"
        with self._conn() as conn, conn.cursor(binary=True) as cur:
            rows = cur.execute(f"SELECT {COLUMNS}, {vec} FROM {self.table} WHERE id = ANY(%s)", [wanted]).fetchall()
        found = {row[0]: _record(row, vectors) for row in rows}
        return [found[i] for i in ids if i in found]

    def count(self, selection: Selection | None = None) -> int:
        cond, params = where_sql(selection)
        with self._conn() as conn:
            row = conn.execute(f"SELECT count(*) FROM {self.table} WHERE {cond}", params).fetchone()
        return int(row[0]) if row else 0

    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]:
        cond, params = where_sql(selection)
        vec = "embedding" + _TOKENS if vectors else "NULL"
        page = f"SELECT {COLUMNS}, {vec} FROM {self.table} WHERE id > %s AND {cond} ORDER BY id LIMIT {_PAGE}"
        after = ""
        while True:  # keyset pages: each a short query, so a long scan holds no snapshot or connection
            with self._conn() as conn, conn.cursor(binary=True) as cur:
                rows = cur.execute(page, [after, *params]).fetchall()
            for row in rows:
                yield _record(row, vectors)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def keyword(self, terms: Sequence[str], top_k: int, selection: Selection | None = None
                ) -> list[tuple[Record, float]]:
        """BM25 in SQL: the collection's term statistics (``terms_<cid>``, kept by triggers with every write) give
        the item count, the total length and how many items hold each term (its IDF); the GIN index on the stored
        tsvector ``tsv`` finds the items holding a term, and each match's term frequencies are its positions there.

        Same formula as :func:`~crossmodal.stores.keywords.bm25_scores` (k1 = 1.2, b = 0.75, IDF
        ``ln(1 + (N - n + 0.5) / (n + 0.5))``), over the whole collection; PostgreSQL's own ``ts_rank`` is not BM25
        (it has no corpus statistics), so it is not used.
        """
        terms = list(dict.fromkeys(terms))
        if top_k <= 0 or not terms:
            return []
        cond, params = where_sql(selection)
        stats = quoted(self.schema, stats_table(self.cid))
        with self._conn() as conn:
            found = {t: (int(n), int(length)) for t, n, length in conn.execute(
                f"SELECT term, items, length FROM {stats} WHERE term = ANY(%s)", [["", *terms]]).fetchall()}
            n_docs, total = found.get("", (0, 0))
            weights = [idf(n_docs, found[t][0]) if found.get(t, (0, 0))[0] else 0.0 for t in terms]
            if not any(weights):
                return []
            avg_len = (total / n_docs if n_docs else 0.0) or 1.0  # as bm25_scores divides
            norm = f"{K1!r} * (1 - {B!r} + {B!r} * t.terms_len / %s)"
            stmt = (f"SELECT {', '.join('t.' + c.strip() for c in COLUMNS.split(','))}, NULL, s.score FROM ("
                    f"SELECT t.id, sum(q.w * u.tf * {K1 + 1!r} / (u.tf + {norm})) AS score "
                    f"FROM {self.table} t, "
                    f"LATERAL (SELECT lexeme, array_length(positions, 1) AS tf FROM unnest(t.tsv)) u, "
                    f"unnest(%s::text[], %s::float8[]) AS q(term, w) "
                    f"WHERE t.tsv @@ to_tsquery('simple', %s) AND u.lexeme = q.term AND ({cond}) "
                    f"GROUP BY t.id ORDER BY score DESC, t.id LIMIT %s) s "  # the top k first: only they join back
                    f"JOIN {self.table} t ON t.id = s.id ORDER BY s.score DESC, t.id")
            query = " | ".join(f"'{t}'" for t in terms)  # terms are letters and digits only: no quotes inside
            rows = conn.execute(stmt, [avg_len, terms, weights, query, *params, top_k]).fetchall()
        return [(_record(row, False), float(row[9])) for row in rows]

    def sparse_query(self, query: Mapping[int, float], top_k: int, selection: Selection | None = None
                     ) -> list[tuple[Record, float]]:
        """Exact, in SQL: the GIN index on ``sparse_ids`` (an inverted index) finds the items sharing an id with the
        query, and pgvector's ``<#>`` (the negative inner product) scores them.

        pgvector's HNSW index on ``sparsevec`` is not used: it is approximate, and refuses vectors with more than
        1,000 non-zeros (a long text's BGE-M3 vector can have more).
        """
        if top_k <= 0 or not query:
            return []
        cond, params = where_sql(selection)
        ids = sorted(int(i) for i in query)
        if ids[0] < 0 or ids[-1] >= SPARSE_DIM:
            raise InputError(f"sparse query token ids must be from 0 to {SPARSE_DIM - 1} in pgvector")
        stmt = (f"SELECT {COLUMNS}, NULL, -(sparse <#> %s::sparsevec) AS score FROM {self.table} "
                f"WHERE sparse_ids && %s::integer[] AND ({cond}) ORDER BY score DESC, id LIMIT %s")
        with self._conn() as conn:
            rows = conn.execute(stmt, [_sparse_text(query), ids, *params, top_k]).fetchall()
        return [(_record(row, False), float(row[9])) for row in rows if row[9] > 0]

    def multivectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        with self._conn() as conn:
            rows = conn.execute(f"SELECT id, multivector, multivector_dim FROM {self.table} WHERE id = ANY(%s) "
                                "AND multivector IS NOT NULL", [wanted]).fetchall()
        return {i: _multivector(data, dim) for i, data, dim in rows}  # type: ignore[misc]

    def query(self, vector: np.ndarray, top_k: int, selection: Selection | None = None) -> list[tuple[Record, float]]:
        if top_k <= 0:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise InputError(f"query vector has {q.shape[0]} values, collection {self.info.name!r} holds dim {self.dim}")
        params: list[Any]
        if selection is not None and selection.where is None and selection.modalities is not None:
            # a modality alone: written out (from a fixed vocabulary), so each of the few modality sets is its
            # own prepared statement, planned once for what it selects (a 10% modality walks the graph)
            cond, params = "modality IN (" + ", ".join(f"'{m}'" for m in selection.modalities if m in MODALITIES) \
                + ")", []
        else:
            cond, params = where_sql(selection)
        parts = cond.split("%s")  # the filter's positional placeholders, named for the statement's named style
        cond = "".join(part + (f"%(p{i})s" if i < len(parts) - 1 else "") for i, part in enumerate(parts))
        # a few more rows than asked for, so ties at the k-th score are settled by id as everywhere else
        limit = top_k + 4
        stmt = self._search.format(cond=cond, limit=limit)
        args: dict[str, Any] = {"q": q, **{f"p{i}": v for i, v in enumerate(params)}}
        with self._conn() as conn:
            with conn.cursor(binary=True) as cur:
                # A metadata filter's values change the best plan (the HNSW graph with iterative scans for a broad
                # filter, an index bitmap for a narrow one), so those searches are planned each time, not prepared.
                rows = cur.execute(stmt, args, prepare=None if not params else False).fetchall()
            if len(rows) < limit and self.hnsw is not None:
                # the graph ran out of candidates that pass the filter, or the collection is small: an exact plan
                # (never a cached one: a prepared plan would keep the index scan whatever the settings say). Sequential
                # scans are allowed too: before PostgreSQL 18 a plan whose every path is disabled still walks the graph.
                with conn.transaction(), conn.cursor(binary=True) as cur:
                    cur.execute("SELECT set_config('enable_indexscan', 'off', true), "
                                "set_config('enable_seqscan', 'on', true)")
                    rows = cur.execute(stmt, args, prepare=False).fetchall()
        score = self._score
        ranked = sorted(((score(row[9]), row) for row in rows), key=lambda sr: (-sr[0], sr[1][0]))[:top_k]
        return [(_record(row, False), float(s)) for s, row in ranked]
