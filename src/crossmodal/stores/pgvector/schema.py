"""The pgvector store's schema: versioned migrations, and the DDL of one collection's table.

Everything lives in one PostgreSQL schema (``crossmodal`` unless the URI says
``?schema=...``)::

    <schema>.schema_migrations   version, description, applied_at: which migrations ran
    <schema>.collections         cid, name, info (JSON: space fingerprint, root, model source), dim,
                                 vector_type (vector | halfvec), distance (cosine | ip), hnsw (index params)
    <schema>.items_<cid>         one table per collection (see :func:`create_items_table`)

Migrations are numbered; :func:`migrate` runs the missing ones in one
transaction under an advisory lock, so processes that open the store at the
same time (Ray workers) never race, and a failed migration leaves nothing
half done. A schema written by a newer crossmodal is refused rather than
guessed at. A migration that changes items tables loops over ``collections``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from ...errors import StoreUnavailable
from .sql import quoted

__all__ = ["MIGRATIONS", "SPARSE_DIM", "Migration", "create_items_table", "drop_keyword_stats", "hnsw_index_sql",
           "items_table", "keyword_index_sql", "keyword_stats_sql", "length_index_sql", "migrate", "schema_version",
           "sparse_index_sql", "stats_table"]

#: the smallest pgvector with HNSW; iterative index scans (filtered recall) need 0.8
MIN_PGVECTOR = (0, 5, 0)
ITERATIVE_PGVECTOR = (0, 8, 0)
#: vectors up to this size stay in the row (a row must fit in an 8 kB page; long texts and metadata go to TOAST)
INLINE_VECTOR_BYTES = 6000
#: the largest dimension pgvector's HNSW indexes accept, per column type
HNSW_MAX_DIM = {"vector": 2000, "halfvec": 4000}
#: the dimension of every stored and query ``sparsevec``: pgvector's largest, so any model's token ids fit (a
#: sparsevec stores only its non-zeros, so the dimension costs nothing)
SPARSE_DIM = 1_000_000_000


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[psycopg.Connection[Any], str], None]


def _v1(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(sql.SQL("""
        CREATE TABLE {}.collections (
            cid serial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            info jsonb NOT NULL,
            dim integer NOT NULL CHECK (dim > 0),
            fingerprint text NOT NULL,
            vector_type text NOT NULL CHECK (vector_type IN ('vector', 'halfvec')),
            distance text NOT NULL CHECK (distance IN ('cosine', 'ip')),
            hnsw jsonb,
            created_at timestamptz NOT NULL DEFAULT now()
        )""").format(sql.Identifier(schema)))


def keyword_index_sql(schema: str, cid: int) -> sql.Composed:
    table = items_table(cid)
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} USING gin (to_tsvector('simple', terms))").format(
        sql.Identifier(f"{table}_terms"), sql.Identifier(schema), sql.Identifier(table))


def _v2(conn: psycopg.Connection[Any], schema: str) -> None:
    """Keyword search: each items table gains ``terms`` and ``terms_len``, filled from its rows, and a GIN index."""
    from ..keywords import document_terms

    rows = conn.execute(sql.SQL("SELECT cid, info FROM {}.collections").format(sql.Identifier(schema))).fetchall()
    for cid, info in rows:
        ident = sql.Identifier(schema, items_table(cid))
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS terms text NOT NULL DEFAULT '', "
                             "ADD COLUMN IF NOT EXISTS terms_len integer NOT NULL DEFAULT 0").format(ident))
        keys = tuple((info or {}).get("text_keys") or ())
        items = conn.execute(sql.SQL("SELECT id, modality, reference, text, metadata FROM {}").format(ident)).fetchall()
        with conn.cursor() as cur:
            cur.executemany(sql.SQL("UPDATE {} SET terms = %s, terms_len = %s WHERE id = %s").format(ident),
                            [(" ".join(t), len(t), i) for i, t in
                             ((i, document_terms(m, ref, text, meta or {}, keys)) for i, m, ref, text, meta in items)])
        conn.execute(keyword_index_sql(schema, cid))


def length_index_sql(schema: str, cid: int) -> sql.Composed:
    """A b-tree on ``terms_len``: BM25's item count and average length from an index-only scan, not the table."""
    table = items_table(cid)
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} (terms_len)").format(
        sql.Identifier(f"{table}_terms_len"), sql.Identifier(schema), sql.Identifier(table))


def sparse_index_sql(schema: str, cid: int) -> sql.Composed:
    table = items_table(cid)
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} USING gin (sparse_ids)").format(
        sql.Identifier(f"{table}_sparse"), sql.Identifier(schema), sql.Identifier(table))


#: the token-vector columns, after the keyword ones, in this order (migration 3 adds them to older tables)
TOKEN_COLUMNS = ("sparse sparsevec", "sparse_ids integer[]", "multivector bytea", "multivector_dim integer")


def _v3(conn: psycopg.Connection[Any], schema: str) -> None:
    """Sparse vectors and multi-vectors: each items table gains their columns (empty) and the sparse GIN index."""
    rows = conn.execute(sql.SQL("SELECT cid FROM {}.collections").format(sql.Identifier(schema))).fetchall()
    for (cid,) in rows:
        ident = sql.Identifier(schema, items_table(cid))
        conn.execute(sql.SQL("ALTER TABLE {} ").format(ident) + sql.SQL(", ").join(
            sql.SQL("ADD COLUMN IF NOT EXISTS " + c) for c in TOKEN_COLUMNS))
        conn.execute(sparse_index_sql(schema, cid))


def _v4(conn: psycopg.Connection[Any], schema: str) -> None:
    """Keyword search's item count and average length from an index: a b-tree on ``terms_len`` in every items table."""
    rows = conn.execute(sql.SQL("SELECT cid FROM {}.collections").format(sql.Identifier(schema))).fetchall()
    for (cid,) in rows:
        conn.execute(length_index_sql(schema, cid))


def stats_table(cid: int) -> str:
    """The keyword statistics of one collection (see :func:`keyword_stats_sql`)."""
    return f"terms_{cid}"


#: one term's change in a set of rows (``{rows}``: a transition table, or the items table itself), with a sign
_TERM_DELTAS = ("SELECT '' AS term, {sign} AS items, {sign} * terms_len::bigint AS length FROM {rows} "
                "UNION ALL SELECT u.lexeme, {sign}, 0 FROM {rows} r, unnest(r.tsv) u")


def _stats_upsert(stats: str, parts: Sequence[tuple[str, str]]) -> str:
    """Add the summed deltas of ``parts`` (row set, sign) to the statistics, in term order (one lock order for every
    writer), skipping terms whose count does not change (an update that keeps an item's terms locks nothing)."""
    deltas = " UNION ALL ".join(_TERM_DELTAS.format(rows=rows, sign=sign) for rows, sign in parts)
    return (f"INSERT INTO {stats} AS s (term, items, length) SELECT term, sum(items), sum(length) FROM ({deltas}) d "
            "GROUP BY term HAVING sum(items) <> 0 OR sum(length) <> 0 ORDER BY term "
            "ON CONFLICT (term) DO UPDATE SET items = s.items + EXCLUDED.items, length = s.length + EXCLUDED.length")


def keyword_stats_sql(schema: str, cid: int) -> list[str]:
    """BM25's corpus statistics, kept exact by the database: a table of how many items hold each term (and, under
    the term ``''``, how many items there are and their total length), filled from the items table and then kept
    by statement-level triggers in the same transaction as every insert, update and delete (a rollback or a crash
    undoes both together; COPY and ``INSERT ... ON CONFLICT`` fire them too)."""
    stats_name = stats_table(cid)
    items, stats = quoted(schema, items_table(cid)), quoted(schema, stats_name)
    func = quoted(schema, f"{stats_name}_keep")
    body = (f"BEGIN IF TG_OP = 'INSERT' THEN {_stats_upsert(stats, [('new_rows', '1')])}; "
            f"ELSIF TG_OP = 'UPDATE' THEN {_stats_upsert(stats, [('new_rows', '1'), ('old_rows', '-1')])}; "
            f"ELSE {_stats_upsert(stats, [('old_rows', '-1')])}; END IF; RETURN NULL; END")
    out = [f'CREATE TABLE IF NOT EXISTS {stats} (term text COLLATE "C" PRIMARY KEY, items bigint NOT NULL, '
           "length bigint NOT NULL)",
           f"DELETE FROM {stats}",
           _stats_upsert(stats, [(items, "1")]),
           f"CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $body${body}$body$"]
    for event, refs in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
                        ("DELETE", "OLD TABLE AS old_rows")):
        name = quoted(f"{stats_name}_{event.lower()}")
        out.append(f"DROP TRIGGER IF EXISTS {name} ON {items}")
        out.append(f"CREATE TRIGGER {name} AFTER {event} ON {items} REFERENCING {refs} FOR EACH STATEMENT "
                   f"EXECUTE FUNCTION {func}()")
    return out


def drop_keyword_stats(schema: str, cid: int) -> list[str]:
    """What :func:`keyword_stats_sql` made, for a dropped collection (its triggers go with its table)."""
    stats = stats_table(cid)
    return [f"DROP TABLE IF EXISTS {quoted(schema, stats)}",
            f"DROP FUNCTION IF EXISTS {quoted(schema, stats + '_keep')}() CASCADE"]


#: each item's terms as a tsvector, stored: keyword search reads term frequencies, it does not re-parse ``terms``
TSV_COLUMN = "tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', terms)) STORED"


def tsv_index_sql(schema: str, cid: int) -> sql.Composed:
    table = items_table(cid)
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} USING gin (tsv)").format(
        sql.Identifier(f"{table}_tsv"), sql.Identifier(schema), sql.Identifier(table))


def _v5(conn: psycopg.Connection[Any], schema: str) -> None:
    """Keyword search without per-search counting or parsing: each items table gains the stored ``tsv`` column
    (its GIN index replaces the one on ``to_tsvector('simple', terms)``) and its term-statistics table."""
    rows = conn.execute(sql.SQL("SELECT cid FROM {}.collections").format(sql.Identifier(schema))).fetchall()
    for (cid,) in rows:
        table = items_table(cid)
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS " + TSV_COLUMN).format(
            sql.Identifier(schema, table)))
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(schema, f"{table}_terms")))
        conn.execute(tsv_index_sql(schema, cid))
        for stmt in keyword_stats_sql(schema, cid):
            conn.execute(stmt)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "collections registry", _v1),
    Migration(2, "keyword terms and their full-text index in every items table", _v2),
    Migration(3, "sparse vectors, their token-id index, and multi-vectors in every items table", _v3),
    Migration(4, "an index on terms_len (keyword statistics) in every items table", _v4),
    Migration(5, "a stored tsvector column, its index, and term statistics kept by triggers, for every items table",
              _v5),
)


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"crossmodal-migrate:{schema}".encode())


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("-")[0].split(".") if p.isdigit())


def schema_version(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations")
                       .format(sql.Identifier(schema))).fetchone()
    return int(row[0]) if row else 0


def ensure_extension(conn: psycopg.Connection[Any], where: str) -> tuple[int, ...]:
    """pgvector's version, installing the extension first when the role may; StoreUnavailable otherwise."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is None:
        available = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
        if available.fetchone() is None:
            raise StoreUnavailable(f"the PostgreSQL server at {where} does not have pgvector installed; install it "
                                   "(https://github.com/pgvector/pgvector#installation) and try again")
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreUnavailable(f"pgvector is not enabled in the database at {where} and this role may not "
                                   "enable it; ask an administrator to run CREATE EXTENSION vector") from exc
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert row is not None
    version = parse_version(row[0])
    if version < MIN_PGVECTOR:
        raise StoreUnavailable(f"pgvector {row[0]} at {where} is too old; crossmodal needs 0.5 or newer "
                               "(HNSW), and 0.8 or newer for the best filtered recall (ALTER EXTENSION vector UPDATE)")
    return version


def migrate(conn: psycopg.Connection[Any], schema: str, where: str,
            migrations: Sequence[Migration] = MIGRATIONS) -> tuple[tuple[int, ...], list[int]]:
    """Bring ``schema`` up to the latest migration; returns pgvector's version and the migrations applied."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(schema)])
        version = ensure_extension(conn, where)
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("""CREATE TABLE IF NOT EXISTS {}.schema_migrations (
                                    version integer PRIMARY KEY,
                                    description text NOT NULL,
                                    applied_at timestamptz NOT NULL DEFAULT now())""").format(sql.Identifier(schema)))
        current = schema_version(conn, schema)
        latest = migrations[-1].version if migrations else 0
        if current > latest:
            raise StoreUnavailable(f"the crossmodal schema {schema!r} at {where} is at version {current}, written by "
                                   f"a newer crossmodal (this one knows up to {latest}); upgrade crossmodal")
        for m in migrations:
            if m.version > current:
                m.apply(conn, schema)
                conn.execute(sql.SQL("INSERT INTO {}.schema_migrations (version, description) VALUES (%s, %s)")
                             .format(sql.Identifier(schema)), [m.version, m.description])
                applied.append(m.version)
    return version, applied


# -- one collection's table ----------------------------------------------------------------------------------------


def items_table(cid: int) -> str:
    return f"items_{cid}"


def opclass(vector_type: str, distance: str) -> str:
    return f"{vector_type}_{'cosine' if distance == 'cosine' else 'ip'}_ops"


def hnsw_index_sql(schema: str, cid: int, vector_type: str, distance: str, hnsw: dict[str, int]) -> sql.Composed:
    table = items_table(cid)
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} USING hnsw (embedding {}) "
                   "WITH (m = {}, ef_construction = {})").format(
        sql.Identifier(f"{table}_hnsw"), sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(opclass(vector_type, distance)), sql.Literal(int(hnsw["m"])),
        sql.Literal(int(hnsw["ef_construction"])))


def create_items_table(conn: psycopg.Connection[Any], schema: str, cid: int, dim: int, vector_type: str,
                       distance: str, hnsw: dict[str, int] | None) -> None:
    """The table of one collection: one row per item, the vector typed with its dimension (HNSW needs it).

    ``id`` sorts in code-point order (``COLLATE "C"``), as scans promise;
    ``source`` and ``stamp`` are the file an item was ingested from and its change stamp;
    ``terms`` are its keyword terms (space-separated, :mod:`~crossmodal.stores.keywords`), ``terms_len``
    how many, ``tsv`` the stored ``to_tsvector('simple', terms)`` under a GIN index (keyword search), and
    ``terms_<cid>`` the collection's term statistics (:func:`keyword_stats_sql`); a b-tree on ``terms_len``;
    ``sparse`` is the item's sparse vector (``sparsevec`` of dimension :data:`SPARSE_DIM`) and ``sparse_ids``
    its token ids, under a GIN index (the inverted index that finds the items sharing a query's ids);
    ``multivector`` its multi-vector as little-endian float16 bytes, ``multivector_dim`` values per row;
    ``modality`` has a b-tree index and ``metadata`` a ``jsonb_path_ops`` GIN
    index (equality filters); ``embedding`` is stored in the row (``STORAGE
    PLAIN``, up to 6,000 bytes: pgvector's default moves a 512-d vector to
    TOAST, which makes every exact scan fetch a second page per row) and has
    an HNSW index unless the dimension is over pgvector's limit (then
    searches are exact scans).
    """
    table = items_table(cid)
    ident = sql.Identifier(schema, table)
    conn.execute(sql.SQL("""
        CREATE TABLE {} (
            id text COLLATE "C" PRIMARY KEY,
            modality text NOT NULL CHECK (modality IN ('image', 'text', 'pair')),
            reference text NOT NULL,
            text text,
            content_hash text NOT NULL DEFAULT '',
            source text NOT NULL DEFAULT '',
            stamp text NOT NULL DEFAULT '',
            metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            embedding {}({}) NOT NULL,
            terms text NOT NULL DEFAULT '',
            terms_len integer NOT NULL DEFAULT 0,
            {},
            {}
        )""").format(ident, sql.SQL(vector_type), sql.Literal(dim), sql.SQL(",\n".join(TOKEN_COLUMNS)),
                     sql.SQL(TSV_COLUMN)))
    if dim * (2 if vector_type == "halfvec" else 4) <= INLINE_VECTOR_BYTES:
        # keep vectors in the row, not in TOAST: an exact scan or a result fetch then reads one page, not two
        conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE PLAIN").format(ident))
    conn.execute(sql.SQL("CREATE INDEX {} ON {} (modality)").format(sql.Identifier(f"{table}_modality"), ident))
    conn.execute(sql.SQL("CREATE INDEX {} ON {} USING gin (metadata jsonb_path_ops)").format(
        sql.Identifier(f"{table}_metadata"), ident))
    conn.execute(tsv_index_sql(schema, cid))
    conn.execute(length_index_sql(schema, cid))
    conn.execute(sparse_index_sql(schema, cid))
    for stmt in keyword_stats_sql(schema, cid):
        conn.execute(stmt)
    if hnsw is not None:
        conn.execute(hnsw_index_sql(schema, cid, vector_type, distance, hnsw))
