"""PostgreSQL + pgvector (``postgresql://...``): collections in a database you already run.

::

    store = crossmodal.open_store("postgresql://user:pass@db:5432/app")
    store = crossmodal.open_store("postgresql://db/app?schema=photos&precision=f16&ef_search=200")

Layout: one table per collection (``<schema>.items_<cid>``), registered in
``<schema>.collections`` with its space fingerprint; see
:mod:`~crossmodal.stores.pg_schema`. One table per collection rather than one
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
b-tree on modality and a GIN (``jsonb_path_ops``) on metadata.

Search: ``ORDER BY embedding <=> q LIMIT k`` with the modality and metadata
filters in the same SQL (:mod:`~crossmodal.stores.pg_sql`), and pgvector 0.8's
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

Writes: an upsert is one transaction. New ids are COPYed straight into the
table in PostgreSQL's binary format; a batch that replaces items is COPYed
into a temporary table and merged with ``INSERT ... ON CONFLICT DO UPDATE``,
so concurrent writers of the same ids queue on row locks instead of failing. Connections come from a
``psycopg_pool`` pool (shared by every thread of a server). URI options
(also keyword arguments to ``open_store``): ``schema`` (default
``crossmodal``), ``precision`` (``f32``/``f16``), ``m`` and
``ef_construction`` (HNSW build, default 16 and 128), ``ef_search`` (default 100),
``iterative_scan`` (``relaxed_order``/``strict_order``/``off``), ``pool_max``
(default 10); every other query parameter goes to libpq.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import (
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    InputError,
    StoreError,
    StoreUnavailable,
)
from .base import MODALITIES, CheckReport, CollectionInfo, Record, Selection
from .pg_schema import (
    HNSW_MAX_DIM,
    ITERATIVE_PGVECTOR,
    MIGRATIONS,
    create_items_table,
    hnsw_index_sql,
    items_table,
    migrate,
    schema_version,
)
from .pg_sql import check_storable, dump_metadata, quoted, where_sql

__all__ = ["PgvectorCollection", "PgvectorStore"]

_COLUMNS = "id, modality, reference, text, content_hash, source, stamp, metadata"
_MUTABLE = ("modality", "reference", "text", "content_hash", "source", "stamp", "metadata", "embedding")
_PAGE = 1000
_RETRIES = 5
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.Struct(">ii").pack(0, 0)
_COPY_TRAILER = struct.Struct(">h").pack(-1)
_FIELDS = struct.Struct(">h").pack(9)
_LEN = struct.Struct(">i")
_NULL = _LEN.pack(-1)
_VEC_HEAD = struct.Struct(">hh")
_OPTIONS = ("schema", "precision", "m", "ef_construction", "ef_search", "iterative_scan", "pool_min", "pool_max",
            "connect_timeout", "maintenance_work_mem")


def _masked(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _split_uri(uri: str) -> tuple[str, dict[str, str]]:
    """libpq's URI (our options removed) and our options from the query string."""
    parts = urlsplit(uri)
    ours: dict[str, str] = {}
    rest = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            ours[key] = value
        else:
            rest.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(rest, quote_via=quote))), ours


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


def copy_payload(records: Sequence[Record], dim: int, halfvec: bool) -> bytes:
    """Rows in PostgreSQL's binary COPY format, in the order of :data:`_COLUMNS` plus the embedding."""
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
    for r, row in zip(records, body):
        rid, modality, reference, text, content_hash, source, stamp, meta = _encoded(r)
        out += (_FIELDS, pack(len(rid)), rid, pack(len(modality)), modality, pack(len(reference)), reference,
                _NULL if r.text is None else pack(len(text)) + text, pack(len(content_hash)), content_hash,
                pack(len(source)), source, pack(len(stamp)), stamp, pack(len(meta) + 1), b"\x01", meta,
                vec_len, head, row.tobytes())
    out.append(_COPY_TRAILER)
    return b"".join(out)


def _vector(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    return np.asarray(value.to_numpy(), dtype=np.float32)


def _record(row: Sequence[Any], with_vector: bool) -> Record:
    return Record(id=row[0], modality=row[1], reference=row[2], text=row[3], content_hash=row[4], source=row[5],
                  stamp=row[6], metadata=row[7] or {}, vector=_vector(row[8]) if with_vector else None)


@contextmanager
def _mapped(where: str, collection: str | None = None) -> Iterator[None]:
    """psycopg and pool errors -> crossmodal's, at the boundary."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        if collection is not None:
            raise CollectionNotFound(f"collection {collection!r} was deleted from {where}") from exc
        raise StoreUnavailable(f"the crossmodal schema is missing at {where}: {exc}") from exc
    except PoolTimeout as exc:
        raise StoreUnavailable(f"no connection to {where} became available: {exc}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"PostgreSQL at {where}: {str(exc).strip()}") from exc
    except psycopg.DataError as exc:
        raise InputError(f"PostgreSQL at {where} refused the data: {str(exc).strip()}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL at {where}: {str(exc).strip()}") from exc


class PgvectorCollection:
    """One collection: one table (see the module docstring). Its SQL is fixed text, rendered once here."""

    def __init__(self, store: PgvectorStore, cid: int, info: CollectionInfo, vector_type: str, distance: str,
                 hnsw: dict[str, int] | None) -> None:
        self.store = store
        self.cid = cid
        self.info = info
        self.dim = info.space.dim
        self.vector_type = vector_type
        self.distance = distance
        self.hnsw = hnsw
        self.table = quoted(store.schema, items_table(cid))
        param = "%(q)s::halfvec" if vector_type == "halfvec" else "%(q)s::vector"  # one parameter, sent once
        order = "<=>" if distance == "cosine" else "<#>"
        # the score is the dot product, as every store reports it: 1 - cosine distance for unit vectors
        self._score = (lambda d: 1.0 - d) if distance == "cosine" else (lambda d: -d)
        self._search = (f"SELECT {_COLUMNS}, NULL, embedding {order} {param} AS distance FROM {self.table} "
                        f"WHERE {{cond}} ORDER BY distance LIMIT {{limit:d}}")  # a literal limit: plans see it

    def __repr__(self) -> str:
        return f"<PgvectorCollection {self.info.name!r} {self.store.uri}>"

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with _mapped(self.store.uri, self.info.name), self.store.pool.connection() as conn:
            yield conn

    # -- writing ------------------------------------------------------------------------------------------------------

    def upsert(self, records: Sequence[Record]) -> None:
        latest = {r.id: r for r in records}  # the last record of an id wins, as if upserted one by one
        if not latest:
            return
        ids = sorted(latest)  # one lock order for every writer
        payload = copy_payload([latest[i] for i in ids], self.dim, self.vector_type == "halfvec")
        with self._conn() as conn:
            exists = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE id = ANY(%s))", [ids]).fetchone()
            if not (exists and exists[0]):
                try:  # all new (a fresh load): COPY straight into the table
                    with conn.transaction():
                        self._copy(conn, self.table, payload)
                    return
                except psycopg.errors.UniqueViolation:
                    pass  # another writer inserted some of these ids meanwhile: merge instead
            self._merge(conn, payload)

    def upsert_and_delete(self, records: Sequence[Record], ids: Sequence[str]) -> int:
        """The upsert (merged) and the delete in one transaction."""
        latest = {r.id: r for r in records}
        doomed = [i for i in dict.fromkeys(ids) if i not in latest]
        if not latest:
            return self.delete(doomed) if doomed else 0
        order = sorted(latest)
        payload = copy_payload([latest[i] for i in order], self.dim, self.vector_type == "halfvec")
        with self._conn() as conn:
            return self._merge(conn, payload, doomed)

    @staticmethod
    def _copy(conn: psycopg.Connection[Any], table: str, payload: bytes) -> None:
        with conn.cursor().copy(f"COPY {table} ({_COLUMNS}, embedding) FROM STDIN (FORMAT BINARY)") as cp:
            cp.write(payload)

    def _merge(self, conn: psycopg.Connection[Any], payload: bytes, delete: Sequence[str] = ()) -> int:
        """COPY into a temporary table, then INSERT ... ON CONFLICT DO UPDATE: replaces rows atomically, and
        concurrent writers of the same ids wait for each other instead of failing. The rows with ids in ``delete``
        go in the same transaction; returns how many did."""
        tmp = quoted(f"upsert_{self.cid}")
        assign = ", ".join(f"{c} = EXCLUDED.{c}" for c in _MUTABLE)
        for attempt in range(_RETRIES):
            try:
                with conn.transaction():
                    conn.execute(f"CREATE TEMP TABLE {tmp} (LIKE {self.table} INCLUDING DEFAULTS) ON COMMIT DROP")
                    self._copy(conn, tmp, payload)
                    conn.execute(f"INSERT INTO {self.table} SELECT * FROM {tmp} ORDER BY id "
                                 f"ON CONFLICT (id) DO UPDATE SET {assign}")
                    gone = conn.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", [list(delete)]).rowcount \
                        if delete else 0
                return max(gone, 0)
            except psycopg.errors.DeadlockDetected:
                if attempt == _RETRIES - 1:
                    raise

    def delete(self, ids: Sequence[str] | None = None, selection: Selection | None = None) -> int:
        with self._conn() as conn:
            if ids is not None:
                cur = conn.execute(f"DELETE FROM {self.table} WHERE id = ANY(%s)", [list(dict.fromkeys(ids))])
            else:
                cond, params = where_sql(selection)
                cur = conn.execute(f"DELETE FROM {self.table} WHERE {cond}", params)
            return max(cur.rowcount, 0)

    @contextmanager
    def deferred_index(self) -> Iterator[None]:
        """Bulk loading: drop the HNSW index, and rebuild it once at the end (much faster than per row).

        Searches stay correct meanwhile (exact scans). If the process dies
        before the end, ``store check`` rebuilds the missing index.
        """
        if self.hnsw is None:
            yield
            return
        with self._conn() as conn:
            conn.execute(f"DROP INDEX IF EXISTS {quoted(self.store.schema, items_table(self.cid) + '_hnsw')}")
        try:
            yield
        finally:
            self.build_index()

    def build_index(self) -> None:
        """Create the HNSW index if it is missing (memory for the build: ``maintenance_work_mem``)."""
        if self.hnsw is None:
            return
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", [self.store.maintenance_work_mem])
            conn.execute(hnsw_index_sql(self.store.schema, self.cid, self.vector_type, self.distance, self.hnsw))
            conn.execute(f"ANALYZE {self.table}")  # fresh statistics, so the planner weighs filters right

    # -- reading ------------------------------------------------------------------------------------------------------

    def get(self, ids: Sequence[str], *, vectors: bool = False) -> list[Record]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        vec = "embedding" if vectors else "NULL"
        with self._conn() as conn, conn.cursor(binary=True) as cur:
            rows = cur.execute(f"SELECT {_COLUMNS}, {vec} FROM {self.table} WHERE id = ANY(%s)", [wanted]).fetchall()
        found = {row[0]: _record(row, vectors) for row in rows}
        return [found[i] for i in ids if i in found]

    def count(self, selection: Selection | None = None) -> int:
        cond, params = where_sql(selection)
        with self._conn() as conn:
            row = conn.execute(f"SELECT count(*) FROM {self.table} WHERE {cond}", params).fetchone()
        return int(row[0]) if row else 0

    def scan(self, selection: Selection | None = None, *, vectors: bool = False) -> Iterator[Record]:
        cond, params = where_sql(selection)
        vec = "embedding" if vectors else "NULL"
        page = f"SELECT {_COLUMNS}, {vec} FROM {self.table} WHERE id > %s AND {cond} ORDER BY id LIMIT {_PAGE}"
        after = ""
        while True:  # keyset pages: each a short query, so a long scan holds no snapshot or connection
            with self._conn() as conn, conn.cursor(binary=True) as cur:
                rows = cur.execute(page, [after, *params]).fetchall()
            for row in rows:
                yield _record(row, vectors)
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

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


class PgvectorStore:
    """Collections in one PostgreSQL schema (see the module docstring for the layout and options)."""

    def __init__(
        self,
        uri: str,
        *,
        schema: str | None = None,
        precision: str | None = None,
        m: int | None = None,
        ef_construction: int | None = None,
        ef_search: int | None = None,
        iterative_scan: str | None = None,
        pool_min: int | None = None,
        pool_max: int | None = None,
        connect_timeout: float | None = None,
        maintenance_work_mem: str | None = None,
    ) -> None:
        conninfo, opts = _split_uri(uri)
        self.uri = _masked(uri)

        def pick(value: Any, name: str, default: Any, cast: Any = str) -> Any:
            raw = value if value is not None else opts.get(name, default)
            try:
                return cast(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"store option {name}={raw!r} in {self.uri} is not a valid {cast.__name__}") from None

        self.schema = pick(schema, "schema", "crossmodal")
        self.precision = pick(precision, "precision", "f32")
        # ef_construction 128 (pgvector's default is 64): the graph reaches recall@10 >= 0.98 at ef_search 100
        self.hnsw_params = {"m": pick(m, "m", 16, int), "ef_construction": pick(ef_construction, "ef_construction",
                                                                                 128, int)}
        self.ef_search = pick(ef_search, "ef_search", 100, int)
        self.iterative_scan = pick(iterative_scan, "iterative_scan", "relaxed_order")
        self.maintenance_work_mem = pick(maintenance_work_mem, "maintenance_work_mem", "1GB")
        timeout = pick(connect_timeout, "connect_timeout", 10.0, float)
        if self.precision not in ("f32", "f16"):
            raise ConfigError(f"precision must be f32 or f16, got {self.precision!r}")
        if self.iterative_scan not in ("relaxed_order", "strict_order", "off"):
            raise ConfigError(f"iterative_scan must be relaxed_order, strict_order or off, got {self.iterative_scan!r}")
        if not 1 <= self.ef_search <= 1000:
            raise ConfigError(f"ef_search must be from 1 to 1000, got {self.ef_search}")
        if not self.schema or len(self.schema) > 48:
            raise ConfigError(f"schema name {self.schema!r} must be 1-48 characters")
        self._lock = threading.Lock()
        self._collections: dict[int, PgvectorCollection] = {}
        with _mapped(self.uri):
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
                    self.pgvector_version, self.migrations_applied = migrate(conn, self.schema, self.uri)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"cannot connect to PostgreSQL at {self.uri}: {str(exc).strip()}") from exc
            self.pool = ConnectionPool(conninfo, min_size=pick(pool_min, "pool_min", 1, int),
                                       max_size=pick(pool_max, "pool_max", 10, int), kwargs={"autocommit": True},
                                       configure=self._configure, open=False, name=f"crossmodal {self.uri}",
                                       timeout=timeout)
            self.pool.open(wait=True, timeout=timeout)

    def __repr__(self) -> str:
        return f"<PgvectorStore {self.uri} schema={self.schema}>"

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.execute("SELECT set_config('hnsw.ef_search', %s, false)", [str(self.ef_search)])
        if self.pgvector_version >= ITERATIVE_PGVECTOR:
            conn.execute("SELECT set_config('hnsw.iterative_scan', %s, false)", [self.iterative_scan])

    @property
    def iterative_scans(self) -> bool:
        return self.pgvector_version >= ITERATIVE_PGVECTOR and self.iterative_scan != "off"

    def _ident(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def _handle(self, row: Sequence[Any]) -> PgvectorCollection:
        cid, info, vector_type, distance, hnsw = row
        parsed = CollectionInfo.from_dict(info)
        with self._lock:
            col = self._collections.get(cid)
            if col is None:
                col = self._collections[cid] = PgvectorCollection(self, cid, parsed, vector_type, distance, hnsw)
            col.info = parsed
            return col

    # -- collections --------------------------------------------------------------------------------------------------

    def create_collection(self, info: CollectionInfo) -> PgvectorCollection:
        vector_type = "halfvec" if self.precision == "f16" else "vector"
        distance = "cosine" if info.space.normalized else "ip"
        hnsw = dict(self.hnsw_params) if info.space.dim <= HNSW_MAX_DIM[vector_type] else None
        with _mapped(self.uri), self.pool.connection() as conn:
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
        with _mapped(self.uri), self.pool.connection() as conn:
            row = self._row(conn, name)
        if row is None:
            raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
        return self._handle(row)

    def list_collections(self) -> list[CollectionInfo]:
        with _mapped(self.uri), self.pool.connection() as conn:
            rows = conn.execute(sql.SQL("SELECT info FROM {} ORDER BY name COLLATE \"C\"")
                                .format(self._ident("collections"))).fetchall()
        return [CollectionInfo.from_dict(r[0]) for r in rows]

    def update_collection(self, info: CollectionInfo) -> None:
        col = self.open_collection(info.name)
        if col.info.space != info.space:
            raise StoreError("a collection's space cannot change; create a new collection for another model")
        with _mapped(self.uri), self.pool.connection() as conn:
            conn.execute(sql.SQL("UPDATE {} SET info = %s WHERE cid = %s").format(self._ident("collections")),
                         [Jsonb(info.to_dict()), col.cid])
        col.info = info

    def drop_collection(self, name: str) -> None:
        with _mapped(self.uri), self.pool.connection() as conn, conn.transaction():
            row = conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s RETURNING cid").format(
                self._ident("collections")), [name]).fetchone()
            if row is None:
                raise CollectionNotFound(f"no collection {name!r} in {self.uri}")
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident(items_table(int(row[0])))))
        with self._lock:
            self._collections.pop(int(row[0]), None)

    # -- integrity ------------------------------------------------------------------------------------------------------

    def check(self, *, repair: bool = True) -> CheckReport:
        """Schema version, every collection's table and HNSW index (rebuilt when missing or invalid), and counts."""
        report = CheckReport()
        with _mapped(self.uri), self.pool.connection() as conn:
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
