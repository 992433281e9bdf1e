"""How the embedded store should search a filter's key set: score every key, or widen the HNSW search.

For a filter that leaves ``m`` of a modality's ``n`` items, the store either
scores all ``m`` keys (each key's vector read from the HNSW index's copies)
or asks the HNSW graph for about ``22.5 n / m`` candidates and keeps those in
the key set (see ``EmbeddedCollection._ann_candidates``). This script times
both plans on random key sets of the largest modality of a store built by
``bench/search.py`` (collection ``bench``), one query at a time on one
thread, and reports each plan's p50, the graph plan's recall@10 against the
exact one, and which one the store picks (``EXACT_SET``,
``EXACT_PER_CANDIDATE``). Passes of the two plans alternate query by query
over different queries, so neither finds the other's graph nodes in the CPU
cache.

Usage
  python bench/search.py --n 1000000 --workdir /tmp/w1m ...   # builds /tmp/w1m/store once
  python bench/filter_plans.py --store /tmp/w1m/store --sizes 500 1000 2000 4000 8000 16000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from search import synthetic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a store bench/search.py built (collection 'bench')")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000, 8000, 16000])
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()

    import crossmodal
    from crossmodal.stores.embedded import collection as plans

    store = crossmodal.open_store(args.store)
    col = store.collection("bench")
    backend = col.backend
    queries = synthetic(2 * args.queries, col.space.dim, seed=2)
    modality = max(("image", "text", "pair"), key=lambda m: col.count(modality=m))
    col.search(vector=queries[0], top_k=10, modality=modality)  # loads the index
    view = backend.derived(modality).view
    keys = np.sort(np.asarray(view.index.keys, dtype=np.int64))
    rng = np.random.default_rng(5)
    print(f"## key sets of the {modality} modality ({len(keys):,} items); {args.queries} queries per plan\n")
    print("| keys in the set | share | score every key p50 ms | widened graph p50 ms | graph recall@10 | "
          "exact ÷ graph | the store picks |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    saved = plans.EXACT_SET, plans.EXACT_PER_CANDIDATE
    for size in args.sizes:
        allowed = np.sort(rng.choice(keys, min(size, len(keys)), replace=False))
        lat: dict[str, list[float]] = {"exact": [], "graph": []}
        hits = 0
        for i in range(args.queries):
            q_exact, q_graph = queries[2 * i], queries[2 * i + 1]
            tops = {}
            for name, q in (("exact", q_exact), ("graph", q_graph), ("truth", q_graph)):
                plans.EXACT_SET, plans.EXACT_PER_CANDIDATE = (10**12, 0.0) if name != "graph" else (0, 0.0)
                t = time.perf_counter()
                cand = backend._ann_candidates(view, q, 10, allowed)
                scores, _ = view.score_bounds(cand, q)
                tops[name] = set(cand[np.argsort(-scores, kind="stable")[:10]].tolist())
                if name != "truth":
                    lat[name].append(time.perf_counter() - t)
            hits += len(tops["truth"] & tops["graph"])
        plans.EXACT_SET, plans.EXACT_PER_CANDIDATE = saved
        fraction = len(allowed) / len(keys)
        k = 1.5 * 15 / fraction
        picks = "score every key" if len(allowed) <= max(saved[0], saved[1] * k) else "widened graph"
        e, g = (float(np.median(lat[n])) * 1e3 for n in ("exact", "graph"))
        print(f"| {len(allowed):,} | {fraction:.2%} | {e:.2f} | {g:.2f} | {hits / (10 * args.queries):.4f} | "
              f"{e / g:.2f} | {picks} |")
    store.close()


if __name__ == "__main__":
    main()
