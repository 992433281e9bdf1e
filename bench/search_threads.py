"""One search on several threads against one thread: latency alone, and throughput under concurrent callers.

The embedded store searches a query's modality views (text, image, pair) at
once, one per core (``search_threads``, default: one per usable CPU, at most
3). This script measures what that buys and what it costs, on one store
opened twice in one process, once with ``search_threads=1`` and once with the
default, with the page cache warm:

  latency     one caller: p50 and p99 per query kind (unfiltered, modality="text" 10%, album="a0" 10%), the
              two stores alternated query by query in an order drawn per query (seeded), and the CPU time
              each search took (process time: all threads)
  throughput  C callers at once (threads of this process, as a server's request threads are), each running
              its share of the queries unfiltered: queries per second, each setting run in rounds whose order
              is drawn per round; the median of the rounds
  hits        whether both stores return the same hits for every query and kind

Data: the clustered vectors and labels of ``bench/search.py`` (10% of the
items text, 10% in album a0). Give the store one of those scripts built
(``--workdir``, the folder holding ``store``) or let this one build it.

Usage
  python bench/search_threads.py --n 200000 --queries 1000
  python bench/search_threads.py --n 1000000 --workdir /tmp/w1m --reuse     # a store bench/search.py built
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from search import synthetic, warm_page_cache  # noqa: E402

KINDS: dict[str, dict[str, Any]] = {"unfiltered": {}, "text 10%": {"modality": "text"},
                                    "album 10%": {"where": {"album": "a0"}}}


def build(path: Path, n: int, dim: int) -> None:
    """The store of ``bench/search.py`` (the same vectors, modalities and album labels)."""
    import crossmodal
    from crossmodal import Record
    from crossmodal.space import Space

    x = synthetic(n, dim, seed=1)
    modality = np.where(np.arange(n) % 10 == 3, "text", np.where(np.arange(n) % 2 == 0, "image", "pair"))
    space = Space(model="synthetic", dim=dim, normalized=True, fingerprint="bench")

    class Vectors:
        def __init__(self) -> None:
            self.space, self.name = space, "synthetic"

    store = crossmodal.open_store(path)
    col = store.collection("bench", model=Vectors())  # type: ignore[arg-type]
    for start in range(0, n, 10_000):
        col.upsert([Record(str(i), str(modality[i]), f"item/{i}", x[i],
                           metadata={"album": "a0" if (i // 3) % 10 == 7 else "other"})
                    for i in range(start, min(n, start + 10_000))])
    store.close()


def throughput(col: Any, queries: np.ndarray, callers: int) -> float:
    """Queries per second with ``callers`` threads searching at once, each its share of ``queries``."""
    shares = np.array_split(queries, callers)
    start = threading.Barrier(callers + 1)

    def caller(share: np.ndarray) -> None:
        start.wait()
        for q in share:
            col.search(vector=q, top_k=10)

    threads = [threading.Thread(target=caller, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return len(queries) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--callers", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()

    import crossmodal
    from crossmodal.stores.embedded.fanout import usable_cpus

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crossmodal-threads-"))
    path = workdir / "store"
    if not (args.reuse and (path / "store.db").exists()):
        build(path, args.n, args.dim)
    queries = synthetic(args.queries, args.dim, seed=2)
    stores = {"1 thread": crossmodal.open_store(path, search_threads=1), "default": crossmodal.open_store(path)}
    cols = {name: s.collection("bench") for name, s in stores.items()}
    threads = {name: s.backend.fanout.threads for name, s in stores.items()}  # type: ignore[attr-defined]
    for col in cols.values():
        for kind in KINDS.values():
            col.search(vector=queries[0], top_k=10, **kind)
    warm_page_cache(path)
    rng = np.random.default_rng(0)

    lat = {(name, kind): [] for name in cols for kind in KINDS}
    cpu = {(name, kind): [] for name in cols for kind in KINDS}
    same = {kind: 0 for kind in KINDS}
    for q in queries:
        for kind in rng.permutation(list(KINDS)):
            hits = {}
            for name in rng.permutation(list(cols)):
                c0, t0 = time.process_time(), time.perf_counter()
                hits[name] = [h.id for h in cols[name].search(vector=q, top_k=10, **KINDS[kind])]
                lat[(name, kind)].append(time.perf_counter() - t0)
                cpu[(name, kind)].append(time.process_time() - c0)
            same[kind] += hits["1 thread"] == hits["default"]

    rates: dict[tuple[str, int], list[float]] = {(name, c): [] for name in cols for c in [1, *args.callers]}
    for _ in range(args.rounds):
        for c in [1, *args.callers]:
            for name in rng.permutation(list(cols)):
                rates[(name, c)].append(throughput(cols[name], queries, c))

    print(f"\n## n = {args.n:,}, {args.queries} queries, {usable_cpus()} usable CPUs, threads per search: "
          f"{threads['1 thread']} and {threads['default']} (default), load {os.getloadavg()[0]:.1f}")
    print("| query | 1 thread p50 / p99 ms | default p50 / p99 ms | p50 ratio | CPU ms per search, 1 / default |"
          " same hits |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        one, dflt = (np.array(lat[(name, kind)]) * 1e3 for name in ("1 thread", "default"))
        c1, cd = (np.median(cpu[(name, kind)]) * 1e3 for name in ("1 thread", "default"))
        print(f"| {kind} | {np.median(one):.2f} / {np.percentile(one, 99):.2f} | {np.median(dflt):.2f} / "
              f"{np.percentile(dflt, 99):.2f} | {np.median(dflt) / np.median(one):.2f}x | {c1:.2f} / {cd:.2f} | "
              f"{same[kind]} of {len(queries)} |")
    print("\n| callers | 1 thread q/s | default q/s | ratio |")
    print("|---:|---:|---:|---:|")
    for c in [1, *args.callers]:
        one, dflt = (float(np.median(rates[(name, c)])) for name in ("1 thread", "default"))
        print(f"| {c} | {one:.0f} | {dflt:.0f} | {dflt / one:.2f}x |")
    for s in stores.values():
        s.close()


if __name__ == "__main__":
    main()
