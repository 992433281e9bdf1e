"""The pgvector store against a real PostgreSQL + pgvector (started by tests/stores/servers.py).

The shared contract (test_contract.py) covers what every store does; these
tests cover what is PostgreSQL's own: the schema and its migrations, the SQL
translation of filters at the edges of the semantics, the HNSW index and
iterative scans (filtered recall on a collection large enough to use them),
half-precision vectors, bulk loads that defer the index, concurrent writers,
and errors at the boundary.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg
import pytest

import crossmodal
from crossmodal import Record
from crossmodal.errors import InputError, StoreUnavailable
from crossmodal.space import Space
from crossmodal.stores.base import CollectionInfo, Selection
from crossmodal.stores.filters import matches, parse_where
from crossmodal.stores.pgvector import PgvectorStore
from crossmodal.stores.pgvector.schema import MIGRATIONS, Migration, migrate, schema_version
from crossmodal.testing.fake import fake_model

from .. import filter_cases
from ..servers import open_pgvector, pg_server_uri, pg_store_uri


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def run_threads(work: Callable[[int], object], count: int) -> None:
    """``work(0)`` .. ``work(count - 1)`` in threads at once; none of them may raise."""
    errors: list[BaseException] = []

    def guarded(seed: int) -> None:
        try:
            work(seed)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(seed,)) for seed in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def sql(query: str, *params: object) -> list[tuple]:
    with psycopg.connect(pg_server_uri(), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description is not None else []


@pytest.fixture
def store(tmp_path: Path):
    st = open_pgvector(tmp_path)
    yield st
    st.close()


def schema_of(st: crossmodal.Store) -> str:
    return st.backend.schema


# -- schema and migrations -------------------------------------------------------------------------------------------


def test_the_server_has_pgvector_with_iterative_scans(store) -> None:
    assert store.backend.pgvector_version >= (0, 8, 0)
    with store.backend.pool.connection() as conn:
        assert conn.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "relaxed_order"
        assert conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "100"


def test_migrations_are_recorded_once_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    first = open_pgvector(tmp_path)
    schema = schema_of(first)
    assert first.backend.migrations_applied == [m.version for m in MIGRATIONS]
    first.close()
    again = open_pgvector(tmp_path)
    assert again.backend.migrations_applied == []  # nothing to do the second time
    again.close()
    sql(f'INSERT INTO "{schema}".schema_migrations (version, description) VALUES (99, %s)', "from the future")
    with pytest.raises(StoreUnavailable, match="newer crossmodal"):
        open_pgvector(tmp_path)


def test_pending_migrations_run_in_order_and_a_failing_one_changes_nothing(tmp_path: Path) -> None:
    st = open_pgvector(tmp_path)
    schema = schema_of(st)
    st.close()
    ran: list[int] = []
    last = MIGRATIONS[-1].version

    def add_column(conn, name):  # a later migration that changes every items table, as real ones will
        ran.append(last + 1)
        for (cid,) in conn.execute(f'SELECT cid FROM "{name}".collections').fetchall():
            conn.execute(f'ALTER TABLE "{name}".items_{cid} ADD COLUMN extra text')

    def broken(conn, name):
        conn.execute(f'CREATE TABLE "{name}".half_done (x int)')
        raise RuntimeError("the second new migration fails")

    with psycopg.connect(pg_server_uri(), autocommit=True) as conn:
        with pytest.raises(RuntimeError):
            migrate(conn, schema, "test", [*MIGRATIONS, Migration(last + 1, "extra", add_column),
                                              Migration(last + 2, "bad", broken)])
        assert schema_version(conn, schema) == last  # all or nothing: the first rolled back with the second
        assert conn.execute("SELECT to_regclass(%s)", [f'"{schema}".half_done']).fetchone()[0] is None
        _, applied = migrate(conn, schema, "test", [*MIGRATIONS, Migration(last + 1, "extra", add_column)])
        assert applied == [last + 1] and schema_version(conn, schema) == last + 1 and ran == [last + 1] * 2


def test_many_processes_opening_a_fresh_schema_at_once_all_succeed(tmp_path: Path) -> None:
    opened: list[crossmodal.Store] = []
    run_threads(lambda _: opened.append(open_pgvector(tmp_path)), 6)
    assert len(opened) == 6
    assert sql(f'SELECT count(*) FROM "{schema_of(opened[0])}".schema_migrations')[0][0] == len(MIGRATIONS)
    for st in opened:
        st.close()


def test_one_table_per_collection_with_the_space_in_the_registry(store) -> None:
    model = fake_model(dim=16)
    store.collection("photos", model=model)
    store.collection("notes", model=fake_model(dim=8))
    schema = schema_of(store)
    rows = sql(f'SELECT name, dim, fingerprint, vector_type, distance, info FROM "{schema}".collections ORDER BY name')
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("notes", 8, fake_model(dim=8).space.fingerprint, "vector", "cosine"),
        ("photos", 16, model.space.fingerprint, "vector", "cosine")]
    assert Space.from_dict(rows[1][5]["space"]) == model.space
    indexes = dict(sql("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", schema))
    hnsw = [d for n, d in indexes.items() if n.endswith("_hnsw")]
    assert len(hnsw) == 2 and all("USING hnsw" in d and "vector_cosine_ops" in d for d in hnsw)
    assert any("jsonb_path_ops" in d for d in indexes.values())


# -- filters and values -------------------------------------------------------------------------------------------------


def test_random_filters_at_the_edges_match_the_reference_evaluator(store) -> None:
    rng = random.Random(11)
    col = store.collection("edges", model=fake_model(dim=8))
    vectors = unit(np.random.default_rng(11), 150, 8)
    records = [Record(f"r{i:03d}", "text", f"ref{i}", vectors[i], metadata=filter_cases.metadata(rng))
               for i in range(150)]
    col.upsert(records)
    for _ in range(250):
        where = filter_cases.where(rng)
        f = parse_where(where)
        expected = sorted(r.id for r in records if matches(f, r.metadata))
        assert sorted(r.id for r in col.items(where=where)) == expected, where
        assert col.count(where=where) == len(expected), where


def test_filters_on_nul_characters_compile_to_what_postgresql_can_store() -> None:
    """PostgreSQL text holds no NUL: such keys and strings become the same test on storable values (no server)."""
    from crossmodal.stores.filters import Cond
    from crossmodal.stores.pgvector.sql import _storable, filter_sql

    rng = random.Random(3)
    alphabet = ["", "a", "ab", "ab\x01", "b", "\x01", "é", "😀"]
    stored = [{"k": rng.choice(alphabet) + rng.choice(alphabet)} for _ in range(300)]
    probes = ["\x00", "a\x00", "ab\x00c", "b\x00\x00", "é\x00"]
    for op in ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists"):
        for probe in probes:
            for key in ("k", "k\x00"):
                value = True if op == "exists" else ((probe, "ab") if op in ("in", "nin") else probe)
                cond = Cond(key, op, value)
                rewritten = _storable(cond)
                expr, params = filter_sql(cond)
                assert not any("\x00" in p for p in params), cond
                for meta in stored:
                    want = matches(cond, meta)
                    got = rewritten if isinstance(rewritten, bool) else matches(rewritten, meta)
                    assert got == want, (cond, rewritten, meta)


def test_metadata_round_trips_with_exact_number_types(store) -> None:
    col = store.collection("numbers", model=fake_model(dim=8))
    meta = {"int": 2020, "float": 2020.0, "big": 2**60, "bigfloat": float(2**60), "tiny": 1e-300, "huge": 1e300,
            "neg": -0.5, "list": [1, 1.0, "1", True], "none": None, "text": "一条龙 🐉 \"q\""}
    col.upsert(Record("x", "text", "x", np.ones(8, dtype=np.float32), metadata=meta))
    got = dict(col.get("x").metadata)
    assert got == meta
    assert [type(got[k]) for k in ("int", "float", "big", "bigfloat")] == [int, float, int, float]
    assert col.count(where={"big": {"$gt": float(2**60)}}) == 0  # 2**60 is not above 2.0**60
    assert col.count(where={"bigfloat": 2**60}) == 1 and col.count(where={"int": 2020.0}) == 1


def test_nul_characters_are_refused_naming_the_item(store) -> None:
    col = store.collection("c", model=fake_model(dim=8))
    with pytest.raises(InputError, match="'bad'.*NUL"):
        col.upsert(Record("bad", "text", "a\x00b", np.ones(8, dtype=np.float32)))
    with pytest.raises(InputError, match="metadata 'k'"):
        col.upsert(Record("bad2", "text", "ok", np.ones(8, dtype=np.float32), metadata={"k": "x\x00"}))
    assert col.count() == 0


# -- search: HNSW, iterative scans, recall ------------------------------------------------------------------------------


FORCE_HNSW = quote("-c enable_seqscan=off -c enable_bitmapscan=off")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory):
    """3,000 items, 10% images, with a rare tag, searched the way PostgreSQL searches a large table: through HNSW.

    At this size the planner would rather scan the table exactly; sequential and bitmap scans are switched
    off for these connections, and the b-tree and GIN indexes dropped, so every search, filtered or not,
    walks the HNSW graph with iterative scans, as it does on a million rows.
    """
    where = tmp_path_factory.mktemp("big")
    st = open_pgvector(where, options=FORCE_HNSW)
    dim = 32
    vectors = unit(np.random.default_rng(5), 3000, dim)
    col = st.collection("big", model=fake_model(dim=dim))
    records = [Record(f"i{i:05d}", "image" if i % 10 == 0 else "text", f"r{i}", vectors[i],
                      metadata={"rare": i % 50 == 0, "bucket": i % 7}) for i in range(3000)]
    col.upsert(records)
    table = f'"{schema_of(st)}".items_{col.backend.cid}'
    sql(f'DROP INDEX "{schema_of(st)}".items_{col.backend.cid}_modality')
    sql(f'DROP INDEX "{schema_of(st)}".items_{col.backend.cid}_metadata')
    sql(f"ANALYZE {table}")
    yield st, col, records, where
    st.close()


def exact_ids(records, q, k, keep=lambda r: True) -> list[str]:
    chosen = [r for r in records if keep(r)]
    scores = np.stack([r.vector for r in chosen]) @ q
    return [chosen[i].id for i in sorted(range(len(chosen)), key=lambda i: (-scores[i], chosen[i].id))[:k]]


def test_filtered_searches_walk_the_hnsw_index(big) -> None:
    st, col, records, _ = big
    statement = col.backend._search.format(cond="modality = ANY(%(p0)s)", limit=14)  # the store's own statement
    with st.backend.pool.connection() as conn:
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN " + statement, {"q": records[1].vector, "p0": ["image"]}).fetchall())
    assert f"Index Scan using items_{col.backend.cid}_hnsw" in plan, plan


@pytest.mark.parametrize(("modality", "where"), [(None, None), ("image", None), (None, {"bucket": 3}),
                                                 ("image", {"rare": True})])
def test_filtered_recall_stays_high_and_results_are_never_short(big, modality, where) -> None:
    _, col, records, _ = big
    f = parse_where(where)

    def keep(r: Record) -> bool:
        return (modality is None or r.modality == modality) and matches(f, r.metadata)

    queries = unit(np.random.default_rng(9), 20, 32)
    recall = []
    for q in queries:
        hits = col.search(vector=q, top_k=10, modality=modality, where=where)
        truth = exact_ids(records, q, 10, keep)
        assert len(hits) == len(truth)  # never short, even when the filter keeps 6 items of 3,000
        assert all(keep(records[int(h.id[1:])]) for h in hits)
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        recall.append(len({h.id for h in hits} & set(truth)) / len(truth))
    assert np.mean(recall) >= 0.98, recall


def test_a_short_graph_result_is_redone_exactly_even_after_plans_are_cached(big) -> None:
    """Without iterative scans a rare filter leaves the graph's 100 candidates nearly empty; the exact rerun must
    really be exact, also once the driver has prepared the statement and PostgreSQL cached a plan for it (a cached
    plan ignores the settings that make the rerun exact; forced here, PostgreSQL may choose to cache on its own)."""
    _, _, records, where = big
    st = open_pgvector(where, options=quote("-c enable_seqscan=off -c enable_bitmapscan=off "
                                             "-c plan_cache_mode=force_generic_plan"), iterative_scan="off")
    col = st.collection("big")
    queries = unit(np.random.default_rng(10), 12, 32)
    for q in queries:  # a broad filter, many times: the graph answers these
        assert len(col.search(vector=q, top_k=10, where={"bucket": 3})) == 10
    for q in queries:
        hits = col.search(vector=q, top_k=10, where={"rare": True})
        assert [h.id for h in hits] == exact_ids(records, q, 10, lambda r: r.metadata["rare"])
    st.close()


def test_half_precision_vectors_halve_the_column_and_keep_scores_close(tmp_path: Path) -> None:
    st = open_pgvector(tmp_path, precision="f16")
    col = st.collection("half", model=fake_model(dim=64))
    vectors = unit(np.random.default_rng(3), 400, 64)
    records = [Record(f"h{i:03d}", "image", f"r{i}", vectors[i]) for i in range(400)]
    col.upsert(records)
    (vtype,) = sql(f'SELECT vector_type FROM "{st.backend.schema}".collections')[0]
    assert vtype == "halfvec"
    (d,) = sql("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname LIKE %s",
               st.backend.schema, "%_hnsw")[0]
    assert "halfvec_cosine_ops" in d
    for q in unit(np.random.default_rng(4), 10, 64):
        hits = col.search(vector=q, top_k=10)
        truth = exact_ids(records, q, 10)
        assert len({h.id for h in hits} & set(truth)) >= 9
        exact = {r.id: float(r.vector @ q) for r in records}
        assert max(abs(h.score - exact[h.id]) for h in hits) < 2e-3
    st.close()


def test_bulk_load_defers_the_index_and_check_builds_one_left_missing(store) -> None:
    col = store.collection("bulk", model=fake_model(dim=16))
    backend = col.backend
    vectors = unit(np.random.default_rng(6), 500, 16)
    index = f"items_{backend.cid}_hnsw"

    def has_index() -> bool:
        return bool(sql("SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s", schema_of(store), index))

    with backend.bulk_load():
        assert not has_index()
        col.upsert([Record(f"b{i}", "text", f"r{i}", vectors[i]) for i in range(500)])
        assert col.search(vector=vectors[7], top_k=1)[0].id == "b7"  # exact meanwhile
    assert has_index()
    # a bulk load killed before its end leaves no index: searches stay exact and check builds it
    sql(f'DROP INDEX "{schema_of(store)}".{index}')
    assert col.search(vector=vectors[9], top_k=1)[0].id == "b9"
    report = store.check(repair=False)
    assert report.clean and any("no HNSW index" in n for n in report.notes)
    report = store.check()
    assert report.clean and has_index() and any("built the HNSW index" in n for n in report.notes)


def test_dimensions_over_the_hnsw_limit_search_exactly(store) -> None:
    col = store.collection("wide", model=fake_model(dim=2048))
    vectors = unit(np.random.default_rng(8), 30, 2048)
    col.upsert([Record(f"w{i}", "image", f"r{i}", vectors[i]) for i in range(30)])
    assert [h.id for h in col.search(vector=vectors[3], top_k=2)][0] == "w3"
    assert any("over pgvector's HNSW limit" in n for n in store.check().notes)


# -- writes ------------------------------------------------------------------------------------------------------------


def test_concurrent_upserts_of_the_same_ids_keep_one_row_each(store) -> None:
    col = store.collection("race", model=fake_model(dim=8))
    vectors = unit(np.random.default_rng(2), 4, 8)

    def writer(seed: int) -> None:
        for round_ in range(15):
            col.upsert([Record(f"id{i}", "text", f"writer {seed} round {round_}", vectors[(i + seed) % 4])
                        for i in range(40)])

    run_threads(writer, 4)
    assert col.count() == 40
    assert sql(f'SELECT count(DISTINCT id), count(*) FROM "{schema_of(store)}".items_{col.backend.cid}')[0] == (40, 40)


def test_vectors_round_trip_bit_for_bit(store) -> None:
    col = store.collection("bits", model=fake_model(dim=16))
    vectors = unit(np.random.default_rng(12), 50, 16)
    col.backend.upsert([Record(f"v{i}", "pair", f"r{i}", vectors[i], text="caption") for i in range(50)])
    listed = list(col.items(vectors=True))
    assert len(listed) == 50
    for r in listed:
        assert np.array_equal(r.vector, vectors[int(r.id[1:])])


def test_a_server_that_cannot_be_reached_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as err:
        PgvectorStore("postgresql://someone:s3cret@127.0.0.1:1/db?connect_timeout=1")
    assert "s3cret" not in str(err.value) and "127.0.0.1" in str(err.value)


def test_a_dropped_collection_handle_says_so(store) -> None:
    col = store.collection("gone", model=fake_model(dim=8))
    store.delete_collection("gone")
    with pytest.raises(crossmodal.CollectionNotFound, match="deleted"):
        col.count()


def test_schemas_keep_stores_apart(tmp_path: Path) -> None:
    a = crossmodal.open_store(pg_store_uri(tmp_path / "a"))
    b = crossmodal.open_store(pg_store_uri(tmp_path / "b"))
    a.collection("same", model=fake_model(dim=8)).add_texts(["only in a"])
    assert [i.name for i in b.collections()] == []
    info = CollectionInfo("same", fake_model(dim=8).space)
    b.backend.create_collection(info).upsert([Record("y", "text", "in b", np.ones(8, dtype=np.float32))])
    assert a.collection("same").count() == 1 and b.collection("same").count(where=None) == 1
    assert b.collection("same").backend.count(Selection(modalities=("text",))) == 1
    a.close()
    b.close()


def test_a_schema_from_before_keyword_search_gains_the_terms_of_its_items(tmp_path: Path) -> None:
    st = open_pgvector(tmp_path)
    col = st.collection("notes", model=fake_model(dim=8), text_keys=["title"])
    col.add_texts(["a zanzibar note", "a plain note"], metadata=[{"title": "Quixotic"}, None])
    schema, cid = schema_of(st), col.backend.cid
    st.close()
    # what version 1 left: no terms columns, no full-text index (and none of version 3's token columns)
    undo_keyword_stats(schema, cid)
    sql(f'DROP INDEX "{schema}".items_{cid}_terms')
    sql(f'ALTER TABLE "{schema}".items_{cid} DROP COLUMN terms, DROP COLUMN terms_len')
    drop_token_columns(schema, cid)
    sql(f'DELETE FROM "{schema}".schema_migrations WHERE version >= 2')
    st = open_pgvector(tmp_path)
    col = st.collection("notes")
    assert col.search("zanzibar", using="keyword")[0].text == "a zanzibar note"
    assert col.search("quixotic", using="keyword")[0].text == "a zanzibar note"
    assert sql("SELECT to_regclass(%s)", f'"{schema}".items_{cid}_tsv')[0][0] is not None
    st.close()


def undo_keyword_stats(schema: str, cid: int) -> None:
    """What version 4 left: no stored tsvector nor term statistics, the GIN index on ``to_tsvector(terms)``."""
    sql(f'DROP FUNCTION "{schema}".terms_{cid}_keep() CASCADE')
    sql(f'DROP TABLE "{schema}".terms_{cid}')
    sql(f'ALTER TABLE "{schema}".items_{cid} DROP COLUMN tsv')
    sql(f'CREATE INDEX items_{cid}_terms ON "{schema}".items_{cid} USING gin (to_tsvector(\'simple\', terms))')


def drop_token_columns(schema: str, cid: int) -> None:
    sql(f'DROP INDEX "{schema}".items_{cid}_sparse')
    sql(f'DROP INDEX IF EXISTS "{schema}".items_{cid}_terms_len')
    sql(f'ALTER TABLE "{schema}".items_{cid} DROP COLUMN sparse, DROP COLUMN sparse_ids, DROP COLUMN multivector, '
        'DROP COLUMN multivector_dim')


def test_a_schema_from_before_token_vectors_gains_their_columns_and_index(tmp_path: Path) -> None:
    from crossmodal.testing.fake_tokens import fake_token_model

    st = open_pgvector(tmp_path)
    col = st.collection("notes", model=fake_model(dim=8))
    col.add_texts(["an old note"])
    schema, cid = schema_of(st), col.backend.cid
    st.close()
    undo_keyword_stats(schema, cid)
    drop_token_columns(schema, cid)  # what version 2 left
    sql(f'DELETE FROM "{schema}".schema_migrations WHERE version >= 3')
    st = open_pgvector(tmp_path)
    assert st.backend.migrations_applied == [3, 4, 5]
    for index in ("sparse", "terms_len"):
        assert sql("SELECT to_regclass(%s)", f'"{schema}".items_{cid}_{index}')[0][0] is not None
    col = st.collection("notes")
    assert col.search("old", using="keyword")[0].text == "an old note"
    tokens = st.collection("tokens", model=fake_token_model(dim=8))
    tokens.add_texts(["a zebra crossing", "a plain road"])
    assert [h.text for h in tokens.search("zebra", using="sparse")] == ["a zebra crossing"]
    assert tokens.search("road", using="keyword", rerank="multivector")[0].signals["multivector"] > 0.99
    st.close()


def test_a_schema_at_version_3_gains_the_terms_len_index(tmp_path: Path) -> None:
    st = open_pgvector(tmp_path)
    col = st.collection("notes", model=fake_model(dim=8))
    col.add_texts(["an old note", "a new note"])
    schema, cid = schema_of(st), col.backend.cid
    st.close()
    undo_keyword_stats(schema, cid)
    sql(f'DROP INDEX "{schema}".items_{cid}_terms_len')  # what version 3 left
    sql(f'DELETE FROM "{schema}".schema_migrations WHERE version >= 4')
    st = open_pgvector(tmp_path)
    assert st.backend.migrations_applied == [4, 5]
    assert sql("SELECT to_regclass(%s)", f'"{schema}".items_{cid}_terms_len')[0][0] is not None
    assert [h.text for h in st.collection("notes").search("old", using="keyword")] == ["an old note"]
    st.close()
