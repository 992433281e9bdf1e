"""PostgreSQL + pgvector (``postgresql://...``): collections in a database you already run.

::

    store = crossmodal.open_store("postgresql://user:pass@db:5432/app")
    store = crossmodal.open_store("postgresql://db/app?schema=photos&precision=f16&ef_search=200")

Layout: one table per collection (``<schema>.items_<cid>``), registered in
``<schema>.collections`` with its space fingerprint; see
:mod:`~crossmodal.stores.pgvector.schema`. One table per collection rather than one
table with a collection column because:

* the HNSW index needs a column typed with one dimension (``vector(512)``),
  and collections of one store may come from models of different dimensions;
* a collection's searches then walk a graph of its own items only, instead of
  filtering other collections' items out of a shared graph (which costs
  recall, or iterative-scan work, on every query);
* dropping a collection is ``DROP TABLE`` (instant, space returned to the OS)
  and bulk loads can drop and rebuild one collection's index alone.

Columns: ``id`` (primary key, code-point order), ``modality``, ``reference``,
``text``, ``content_hash``, ``source``, ``stamp``, ``metadata`` (JSONB), ``embedding``
(``vector(dim)``, or ``halfvec(dim)`` with ``precision=f16``: half the disk
and memory, scores within ~1e-3). Indexes: HNSW on the embedding
(``vector_cosine_ops`` for normalized spaces, inner product otherwise), a
b-tree on modality and a GIN (``jsonb_path_ops``) on metadata. Searches and
writes: :mod:`~crossmodal.stores.pgvector.collection`.

Connections come from a ``psycopg_pool`` pool (shared by every thread of a
server). URI options (also keyword arguments to ``open_store``; see
:class:`~crossmodal.stores.pgvector.options.PgvectorOptions`): ``schema``
(default ``crossmodal``), ``precision`` (``f32``/``f16``), ``m`` and
``ef_construction`` (HNSW build, default 16 and 128), ``ef_search`` (default
100), ``iterative_scan`` (``relaxed_order``/``strict_order``/``off``),
``pool_min``, ``pool_max`` (default 10), ``connect_timeout``,
``maintenance_work_mem``; every other query parameter goes to libpq. Many
processes and machines may write one database at once, so the store is
``shared`` (distributed ingest writes to it).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from ...errors import CollectionExists, CollectionNotFound, ConfigError, StoreError, StoreUnavailable
from ..base import CheckReport, CollectionInfo, StoreBase
from .boundary import mapped
from .collection import PgvectorCollection
from .options import PgvectorOptions, libpq_uri, masked
from .schema import (
    HNSW_MAX_DIM,
    ITERATIVE_PGVECTOR,
    MIGRATIONS,
    create_items_table,
    drop_keyword_stats,
    items_table,
    migrate,
    schema_version,
)

__all__ = ["PgvectorStore"]


class PgvectorStore(StoreBase):
    """Collections in one PostgreSQL schema (see the module docstring for the layout; the options are
    :class:`PgvectorOptions`, from the URI's query string or keyword arguments)."""

    shared = True
    kind = "PostgreSQL + pgvector"

    def __init__(self, uri: str, *, options: PgvectorOptions | None = None, **keywords: Any) -> None:
        self.uri = masked(uri)
        if options is not None and keywords:
            raise ConfigError("give the store options as a PgvectorOptions object or as keyword arguments, not both")
        self.options = options if options is not None else PgvectorOptions.from_uri(uri, **keywords)
        self.schema = self.options.schema
        self.precision = self.options.precision
        self.hnsw_params = {"m": self.options.m, "ef_construction": self.options.ef_construction}
        conninfo, timeout = libpq_uri(uri), self.options.connect_timeout
        self._lock = threading.Lock()
        self._collections: dict[int, PgvectorCollection] = {}
        with mapped(self.uri):
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
                    self.pgvector_version, self.migrations_applied = migrate(conn, self.schema, self.uri)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.uri}: {str(exc).strip()}") from exc
            self.pool = ConnectionPool(conninfo, min_size=self.options.pool_min, max_size=self.options.pool_max,
                                       kwargs={"autocommit": True}, configure=self._configure, open=False,
                                       name=f"crossmodal {self.uri}", timeout=timeout)
            self.pool.open(wait=True, timeout=timeout)

    def __repr__(self) -> str:
        return f"<PgvectorStore {self.uri} schema={self.schema}>"

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(self.options.ef_search)])
        if self.pgvector_version >= ITERATIVE_PGVECTOR:
            conn.execute("SELECT set_config('hnsw.iterative_scan', %s, false)", [self.options.iterative_scan])

    @property
    def iterative_scans(self) -> bool:
        return self.pgvector_version >= ITERATIVE_PGVECTOR and self.options.iterative_scan != "off"

    def _ident(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def _handle(self, row: Sequence[Any]) -> PgvectorCollection:
        cid, info, vector_type, distance, hnsw = row
        parsed = CollectionInfo.from_dict(info)
        with self._lock:
            col = self._collections.get(cid)
            if col is None:
                col = self._collections[cid] = PgvectorCollection(self.pool, self.uri, self.options, cid, parsed,
                                                                  vector_type, distance, hnsw)
            col.info = parsed
            return col

    # -- collections --------------------------------------------------------------------------------------------------

    def create_collection(self, info: CollectionInfo) -> PgvectorCollection:
        vector_type = "halfvec" if self.precision == "f16" else "vector"
        distance = "cosine" if info.space.normalized else "ip"
        hnsw = dict(self.hnsw_params) if info.space.dim <= HNSW_MAX_DIM[vector_type] else None
        with mapped(self.uri), self.pool.connection() as conn:
            try:
                with conn.transaction():
                    row = conn.execute(
                        sql.SQL("INSERT INTO {} (name, info, dim, fingerprint, vector_type, distance, hnsw) "
                                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING cid").format(self._ident("collections")),
                        [info.name, Jsonb(info.to_dict()), info.space.dim, info.space.fingerprint,
                         vector_type, distance, Jsonb(hnsw) if hnsw else None]).fetchone()
                    assert row is not None
                    create_items_table(conn, self.schema, int(row[0]), info.space.dim, vector_type, distance, hnsw)
            except psycopg.errors.UniqueViolation:
                raise CollectionExists(f"collection {info.name!r} already exists in {self.uri}") from None
        return self._handle((int(row[0]), info.to_dict(), vector_type, distance, hnsw))

    def _row(self, conn: psycopg.Connection[Any], name: str) -> Sequence[Any] | None:
        return conn.execute(sql.SQL("SELECT cid, info, vector_type, distance, hnsw FROM {} WHERE name = %s")
                            .format(self._ident("collections")), [name]).fetchone()

    def open_collection(self, name: str) -> PgvectorCollection:
        with mapped(self.uri), self.pool.connection() as conn:
            row = self._row(conn, name)
        if row is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
        return self._handle(row)

    def list_collections(self) -> list[CollectionInfo]:
        with mapped(self.uri), self.pool.connection() as conn:
            rows = conn.execute(sql.SQL("SELECT info FROM {} ORDER BY name COLLATE \"C\"")
                                .format(self._ident("collections"))).fetchall()
        return [CollectionInfo.from_dict(r[0]) for r in rows]

    def update_collection(self, info: CollectionInfo) -> None:
        col = self.open_collection(info.name)
        if col.info.space != info.space:
            raise StoreError("a collection's space cannot change; create a new collection for another model")
        with mapped(self.uri), self.pool.connection() as conn:
            conn.execute(sql.SQL("UPDATE {} SET info = %s WHERE cid = %s").format(self._ident("collections")),
                         [Jsonb(info.to_dict()), col.cid])
        col.info = info

    def drop_collection(self, name: str) -> None:
        with mapped(self.uri), self.pool.connection() as conn, conn.transaction():
            row = conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s RETURNING cid").format(
                self._ident("collections")), [name]).fetchone()
            if row is None:
                raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident(items_table(int(row[0])))))
            for stmt in drop_keyword_stats(self.schema, int(row[0])):
                conn.execute(stmt)
        with self._lock:
            self._collections.pop(int(row[0]), None)

    # -- integrity ------------------------------------------------------------------------------------------------------

    def check(self, *, repair: bool = True) -> CheckReport:
        """Schema version, every collection's table and HNSW index (rebuilt when missing or invalid), and counts."""
        report = CheckReport()
        with mapped(self.uri), self.pool.connection() as conn:
            version = schema_version(conn, self.schema)
            if version != MIGRATIONS[-1].version:
                report.problems.append(f"schema version {version}, expected {MIGRATIONS[-1].version}")
                report.unresolved.append(report.problems[-1])
            if not self.iterative_scans:
                report.notes.append("pgvector " + ".".join(map(str, self.pgvector_version)) + " has no iterative "
                                    "index scans (0.8+): filtered searches fall back to exact scans more often")
            rows = conn.execute(sql.SQL("SELECT cid, name, hnsw FROM {} ORDER BY name").format(
                self._ident("collections"))).fetchall()
            for cid, name, hnsw in rows:
                table = items_table(cid)
                found = conn.execute("SELECT to_regclass(%s)", [f'"{self.schema}"."{table}"']).fetchone()
                if found is None or found[0] is None:
                    report.problems.append(f"collection {name!r}: its table {self.schema}.{table} is missing")
                    report.unresolved.append(report.problems[-1])
                    continue
                counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._ident(table))).fetchone()
                report.collections[name] = int(counted[0]) if counted else 0
                if hnsw is None:
                    report.notes.append(f"collection {name!r}: dimension over pgvector's HNSW limit, exact search")
                    continue
                valid = conn.execute(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
                    [self.schema, f"{table}_hnsw"]).fetchone()
                if valid is not None and valid[0]:
                    continue
                if valid is None:
                    # a bulk load that died before rebuilding its index: searches were exact (slower) meanwhile
                    if repair:
                        self.open_collection(name).build_index()
                        report.notes.append(f"collection {name!r}: built the HNSW index an interrupted bulk load "
                                            "left missing")
                    else:
                        report.notes.append(f"collection {name!r}: no HNSW index (searches are exact scans until "
                                            "`crossmodal store check` builds it)")
                    continue
                report.problems.append(f"collection {name!r}: its HNSW index is invalid (a failed build)")
                if not repair:
                    report.unresolved.append(report.problems[-1])
                    continue
                conn.execute(sql.SQL("DROP INDEX {}").format(self._ident(f"{table}_hnsw")))
                self.open_collection(name).build_index()
                report.repairs.append(f"collection {name!r}: rebuilt its HNSW index")
        return report

    def close(self) -> None:
        self.pool.close()
