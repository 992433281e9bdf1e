"""Where a warm unfiltered search spends its time above the raw HNSW search, step by step.

Builds (or reuses, with --workdir and --reuse) an embedded store of the clustered vectors of
``bench/search.py``, then times, per query, each step the store takes, in the order it takes
them, with the page cache warm (every file read first):

  usearch-raw      the modalities' usearch indexes searched directly for 10 (what bench/search.py calls usearch-raw)
  ann-search       the same indexes asked for the candidates the store asks for (2-3x more), through its views
  transaction      opening the read transaction: counts, snapshot, the recorded HNSW files
  catch-up         each view checked against the snapshot (nothing to catch up when warm)
  bounds           each candidate's score from the index's copy, and its error bound
  fetch            the rows that can still reach the top read from SQLite, rescored, records built
  backend.query    all of the above, as the store runs it
  Collection       Collection.search(vector=q): the query checked, hits built

and then usearch-raw and Collection.search again, alternated query by query, for their ratio under one load,
and how many of the candidates a worst-case rounding bound on usearch's own scores would rule out.

Usage
  python bench/search_layers.py --n 200000 --queries 1000
  python bench/search_layers.py --n 200000 --workdir /tmp/store-200k --reuse   # a store bench/search.py built
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from search import synthetic, warm_page_cache  # noqa: E402


def median_ms(fn: Any, queries: np.ndarray) -> float:
    lat = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        fn(q)
        lat[i] = time.perf_counter() - t
    return float(np.median(lat)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()

    import crossmodal
    from crossmodal import Record
    from crossmodal.space import Space
    from crossmodal.stores.base import MODALITIES
    from crossmodal.stores.embedded.derived import ann_rows, read_snapshot

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crossmodal-layers-"))
    path = workdir / "store"
    if not (args.reuse and (path / "store.db").exists()):
        x = synthetic(args.n, args.dim, seed=1)
        modality = np.where(np.arange(args.n) % 10 == 3, "text", np.where(np.arange(args.n) % 2 == 0, "image", "pair"))
        space = Space(model="synthetic", dim=args.dim, normalized=True, fingerprint="bench")

        class Vectors:
            def __init__(self) -> None:
                self.space, self.name = space, "synthetic"

        store = crossmodal.open_store(path)
        col = store.collection("bench", model=Vectors())  # type: ignore[arg-type]
        for start in range(0, args.n, 10_000):
            col.upsert([Record(str(i), str(modality[i]), f"item/{i}", x[i], metadata={"album": "a0" if i % 10 == 7
                                                                                       else "other"})
                        for i in range(start, min(args.n, start + 10_000))])
        store.close()
        del x
    queries = synthetic(args.queries, args.dim, seed=2)
    store = crossmodal.open_store(path)
    col = store.collection("bench")
    backend = col.backend
    col.search(vector=queries[0], top_k=10)
    warm_page_cache(path)
    views = {m: backend.derived(m).view for m in MODALITIES if backend.derived(m).view is not None}
    top_k = 10
    want = max(2 * top_k, top_k + 20)

    def raw(q: np.ndarray) -> None:
        for v in views.values():  # (a modality small enough for exact search has an exact view: searched as is)
            v.index.search(q, top_k, threads=1) if hasattr(v, "index") else v.search(q, top_k)

    def ann(q: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [v.search(q, want) for v in views.values()]

    def transaction(q: np.ndarray) -> None:  # what the store reads first, as it reads it
        with backend.db.read() as conn:
            backend._counts(conn)
            read_snapshot(conn)
            ann_rows(conn, backend.cid)

    def catch_up(q: np.ndarray) -> None:
        with backend.db.read() as conn:
            counts, snap, recorded = backend._counts(conn), read_snapshot(conn), ann_rows(conn, backend.cid)
            for m in views:
                with backend.derived(m).lock:
                    backend.derived(m).current(conn, counts[m], snap, recorded)

    found = [ann(q) for q in queries]
    steps: dict[str, float] = {}
    steps["usearch-raw"] = median_ms(raw, queries)
    steps["ann-search"] = median_ms(ann, queries)
    steps["transaction"] = median_ms(transaction, queries)
    steps["catch-up (and transaction)"] = median_ms(catch_up, queries)
    i = iter(range(len(queries)))

    def bounds(q: np.ndarray) -> None:
        for (keys, _), v in zip(found[next(i)], views.values()):
            if hasattr(v, "score_bounds"):
                v.score_bounds(keys, q)

    steps["bounds"] = median_ms(bounds, queries)
    cands = [[(keys, *v.score_bounds(keys, q)) if hasattr(v, "score_bounds") else (keys, scores, 0.0)
              for (keys, scores), v in zip(f, views.values())] for f, q in zip(found, queries)]
    j = iter(range(len(queries)))

    def fetch(q: np.ndarray) -> None:
        with backend.db.read() as conn:
            backend._fetch(conn, cands[next(j)], top_k, q)

    steps["fetch (and a transaction)"] = median_ms(fetch, queries)
    steps["backend.query"] = median_ms(lambda q: backend.query(q, top_k), queries)
    steps["Collection.search"] = median_ms(lambda q: col.search(vector=q, top_k=top_k), queries)
    # the two that the goal compares, alternated query by query (each query searched by both, half the queries
    # apart), so that a change in the machine's load between the rows above cannot tilt their ratio
    half = len(queries) // 2
    both = [(raw, q) for q in queries] + [(lambda q: col.search(vector=q, top_k=top_k), q) for q in queries]
    order = [both[i] if k == 0 else both[len(queries) + (i + half) % len(queries)]
             for i in range(len(queries)) for k in (0, 1)]
    lat = np.empty(len(order))
    for n, (fn, q) in enumerate(order):
        t = time.perf_counter()
        fn(q)
        lat[n] = time.perf_counter() - t
    alternated = (float(np.median(lat[0::2])) * 1e3, float(np.median(lat[1::2])) * 1e3)
    # how many candidates usearch's own (bf16) scores could rule out before any copy is read: a candidate
    # whose score is below the 10th best minus twice a worst-case rounding bound for unit vectors
    # (u per side, |x'q' - xq| <= 2u) cannot reach the top 10
    kept = {u: np.median([int((s >= np.sort(s)[-top_k] - 2 * 2 * u).sum()) for s in
                          (np.concatenate([c[1] for c in f]) for f in found)]) for u in (2.0**-8, 2.0**-7)}
    store.close()
    base = steps["usearch-raw"]
    print(f"\n## n = {args.n:,}, {args.queries} queries, warm page cache; median ms per query")
    print("| step | ms | x usearch-raw |")
    print("|---|---:|---:|")
    for name, ms in steps.items():
        print(f"| {name} | {ms:.3f} | {ms / base:.2f} |")
    print(f"\nalternated query by query: usearch-raw {alternated[0]:.3f} ms, Collection.search {alternated[1]:.3f} ms, "
          f"{alternated[1] / alternated[0]:.2f}x")
    print(f"candidates: {sum(len(c[0]) for c in found[0])} per query; a worst-case bound on usearch's own scores "
          f"would keep a median of {kept[2.0**-8]:.0f} (u = 2^-8) or {kept[2.0**-7]:.0f} (u = 2^-7)")


if __name__ == "__main__":
    main()
