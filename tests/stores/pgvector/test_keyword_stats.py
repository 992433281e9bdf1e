"""PostgreSQL keyword search's term statistics (``terms_<cid>``): kept exact by triggers through every kind of write.

BM25 needs the item count, the total length and how many items hold each query term; the pgvector store reads them
from a table its triggers keep in the same transaction as each write. These tests change a collection every way
the store writes (fresh COPY, merged upserts that change or keep terms, deletes by id and by filter, a move: the
upsert and the delete in one transaction, rolled-back writes, concurrent writers) and compare the table with the
statistics recomputed from the items, and keyword scores with the reference BM25.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import psycopg
import pytest

from crossmodal import Record
from crossmodal.stores.base import Selection
from crossmodal.stores.filters import parse_where
from crossmodal.stores.keywords import bm25_scores, record_terms
from crossmodal.testing.fake import fake_model

from ..servers import open_pgvector, pg_server_uri
from .test_store import run_threads, schema_of, sql, undo_keyword_stats, unit


def stored(col) -> dict[str, tuple[int, int]]:
    """The statistics table, without the terms no item holds any more."""
    rows = sql(f'SELECT term, items, length FROM "{col.backend.schema}".terms_{col.backend.cid} '
               "WHERE items <> 0 OR length <> 0")
    return {t: (int(n), int(length)) for t, n, length in rows}


def expected(col) -> dict[str, tuple[int, int]]:
    """The statistics recomputed from the items, in Python, the way the reference BM25 counts them."""
    docs = [record_terms(r, col.backend.info.text_keys) for r in col.backend.scan()]
    out = {t: (n, 0) for t, n in Counter(t for d in docs for t in set(d)).items()}
    if docs:
        out[""] = (len(docs), sum(len(d) for d in docs))
    return out


def rec(i: str, text: str, vector: np.ndarray, **metadata: object) -> Record:
    return Record(i, "text", text, vector, text=text, metadata=metadata)


@pytest.fixture
def col(tmp_path: Path):
    st = open_pgvector(tmp_path)
    yield st.collection("notes", model=fake_model(dim=8), text_keys=["title"])
    st.close()


def test_statistics_stay_exact_through_updates_deletes_and_moves(col) -> None:
    v = unit(np.random.default_rng(0), 8, 8)
    backend = col.backend
    backend.upsert([rec("a", "red cat red", v[0], title="Zebra"), rec("b", "blue cat", v[1]),
                    rec("c", "green dog", v[2], kind="x")])  # all new: one COPY
    assert stored(col) == expected(col) and stored(col)[""] == (3, 8) and stored(col)["cat"] == (2, 0)
    backend.upsert([rec("a", "red bird", v[0]), rec("d", "blue whale", v[3])])  # merged: one changed, one new
    assert stored(col) == expected(col) and "zebra" not in stored(col)
    backend.upsert([rec("b", "blue cat", v[4], kind="not a text key")])  # same terms
    assert stored(col) == expected(col)
    backend.replace([rec("e", "blue cat", v[1])], ["b"])  # a move: the new item and the old one's delete together
    assert stored(col) == expected(col) and stored(col)["cat"] == (1, 0)
    assert backend.delete(["a", "nothing"]) == 1
    assert stored(col) == expected(col) and "bird" not in stored(col)
    assert backend.delete(selection=Selection(where=parse_where({"kind": "x"}))) == 1
    assert stored(col) == expected(col) and stored(col)[""] == (2, 4)
    # a write that rolls back leaves the statistics as they were
    with psycopg.connect(pg_server_uri()) as conn:
        conn.execute(f'DELETE FROM "{backend.schema}".items_{backend.cid}')
        conn.rollback()
    assert stored(col) == expected(col)
    backend.delete(["d", "e"])
    assert stored(col) == expected(col) == {}
    assert backend.keyword(["blue"], 5) == []


def test_keyword_scores_use_the_statistics_and_match_the_reference(col) -> None:
    v = unit(np.random.default_rng(1), 6, 8)
    texts = ["red cat red", "blue cat", "green dog dog dog", "a red dog", "cat cat cat cat cat", "plain"]
    col.backend.upsert([rec(f"i{n}", t, v[n]) for n, t in enumerate(texts)])
    col.backend.upsert([rec("i5", "red plain words here", v[5])])
    col.backend.delete(["i1"])
    docs = {r.id: record_terms(r) for r in col.backend.scan()}
    want = dict(zip(docs, bm25_scores(["red", "cat"], list(docs.values()))))
    got = {r.id: s for r, s in col.backend.keyword(["red", "cat"], 10)}
    assert set(got) == {i for i, s in want.items() if s > 0}
    assert all(got[i] == pytest.approx(want[i], rel=1e-12) for i in got)


def test_statistics_stay_exact_under_concurrent_writers(col) -> None:
    vectors = unit(np.random.default_rng(2), 4, 8)
    words = ["alpha", "beta", "gamma", "delta", "omega"]

    def writer(seed: int) -> None:
        for round_ in range(8):
            batch = [rec(f"id{i}", f"{words[(i + seed) % 5]} {words[round_ % 5]} w{seed}", vectors[i % 4])
                     for i in range(seed, 30, 2)]
            col.backend.replace(batch, [f"id{i}" for i in range(round_, 30, 7)])

    run_threads(writer, 4)
    assert stored(col) == expected(col)


def test_a_schema_at_version_4_gains_the_stored_tsvector_and_the_statistics(tmp_path: Path) -> None:
    st = open_pgvector(tmp_path)
    col = st.collection("notes", model=fake_model(dim=8), text_keys=["title"])
    col.add_texts(["an old note", "a new note", "old old old"], metadata=[{"title": "Quixotic"}, None, None])
    schema, cid = schema_of(st), col.backend.cid
    st.close()
    undo_keyword_stats(schema, cid)  # what version 4 left
    sql(f'DELETE FROM "{schema}".schema_migrations WHERE version >= 5')
    st = open_pgvector(tmp_path)
    assert st.backend.migrations_applied == [5]
    col = st.collection("notes", model=fake_model(dim=8))
    assert stored(col) == expected(col) and stored(col)["old"] == (2, 0)
    indexes = dict(sql("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", schema))
    assert f"items_{cid}_terms" not in indexes and "USING gin (tsv)" in indexes[f"items_{cid}_tsv"]
    assert [h.text for h in col.search("quixotic", using="keyword")] == ["an old note"]
    col.add_texts(["one more old note"])  # the triggers keep the statistics from now on
    assert stored(col) == expected(col) and stored(col)["old"] == (3, 0)
    st.close()


def test_a_dropped_collection_takes_its_statistics_along(tmp_path: Path) -> None:
    st = open_pgvector(tmp_path)
    col = st.collection("gone", model=fake_model(dim=8))
    col.add_texts(["a note"])
    schema, cid = schema_of(st), col.backend.cid
    st.delete_collection("gone")
    assert sql("SELECT to_regclass(%s)", f'"{schema}".terms_{cid}')[0][0] is None
    assert sql("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
               "WHERE n.nspname = %s AND p.proname = %s", schema, f"terms_{cid}_keep")[0][0] == 0
    st.close()
