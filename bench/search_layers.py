"""Where a warm unfiltered search spends its time above the raw HNSW search, step by step.

Builds (or reuses, with --workdir and --reuse) an embedded store of the clustered vectors of
``bench/search.py``, then times, per query, each step the store takes, in the order it takes
them, with the page cache warm (every file read first):

  usearch-raw      the modalities' usearch indexes searched directly for 10 (what bench/search.py calls usearch-raw)
  ann-search       the same indexes asked for the candidates the store asks for (2-3x more), through its views
  transaction      opening the read transaction: counts, snapshot, the recorded HNSW files (one statement)
  catch-up         each view checked against the snapshot (nothing to catch up when warm)
  error bound      how far usearch's scores may be off, from the query alone (unit vectors)
  stored copies    each candidate's score from the index's bf16 copy and its own bound (what a raw space does)
  fetch            the rows that can still reach the top read from SQLite, rescored, records built
  backend.query    all of the above, as the store runs it
  Collection       Collection.search(vector=q): the query checked, hits built

The store is opened with search_threads=1, so that every step runs on one
thread as usearch-raw does, and then seven searches are alternated query by
query, for their ratios under one load: usearch-raw, Collection.search,
Collection.search pruning by each candidate's stored copy (what a space whose
vectors are not unit length does), Collection.search without read-ahead hints (what they cost
warm: once the file is warm, one probe of the page cache every 16 reads of rows), a floor: the read
transaction, the HNSW searches, and the rows of the 10 best-scored candidates read from SQLite and
scored (the least that a store keeping its items in SQLite and returning exact scores must do; no
records, no hits), and the store's default, its views searched at once on the usable CPUs
(``search_threads`` unset), beside usearch-raw searched the same way (the same jobs, the same
threads: ``stores/embedded/fanout.py``). Last, how many rows
the store read per query; how far usearch's scores are from the product of the bf16 roundings and
from the exact scores (in the bound's standard deviations); whether both prunings return the same
hits, unfiltered and with a 10% metadata filter; and what one small step after the searches
(checking the query vector) costs in a loop and right after an HNSW search.
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
    from crossmodal.stores.embedded.derived import vectors_of
    from crossmodal.stores.embedded.fanout import Fanout
    from crossmodal.stores.embedded.options import EmbeddedOptions
    from crossmodal.stores.embedded.sqlite import rows_by_keys

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
            # the labels bench/search.py gives (10% of every modality), so either script's store serves the other
            col.upsert([Record(str(i), str(modality[i]), f"item/{i}", x[i],
                               metadata={"album": "a0" if (i // 3) % 10 == 7 else "other"})
                        for i in range(start, min(args.n, start + 10_000))])
        store.close()
        del x
    queries = synthetic(args.queries, args.dim, seed=2)
    store = crossmodal.open_store(path, search_threads=1)  # (every step on one thread, as usearch-raw runs)
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

    at_once = Fanout(EmbeddedOptions().threads)  # the store's default

    def raw_at_once(q: np.ndarray) -> None:  # usearch-raw, the views searched as the store's default searches them
        at_once.run([(len(v), (lambda v=v: v.index.search(q, top_k, threads=1) if hasattr(v, "index")
                               else v.search(q, top_k))) for v in views.values()])

    def ann(q: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [v.search(q, want) for v in views.values()]

    def transaction(q: np.ndarray) -> None:  # what the store reads first, as it reads it
        with backend.db.read() as conn:
            backend._search_state(conn)

    def catch_up(q: np.ndarray) -> None:
        with backend.db.read() as conn:
            counts, snap, recorded = backend._search_state(conn)
            for m in views:
                with backend.derived(m).lock:
                    backend.derived(m).current(conn, counts[m], snap, recorded)

    found = [ann(q) for q in queries]
    steps: dict[str, float] = {}
    steps["usearch-raw"] = median_ms(raw, queries)
    steps["ann-search"] = median_ms(ann, queries)
    steps["transaction"] = median_ms(transaction, queries)
    steps["catch-up (and transaction)"] = median_ms(catch_up, queries)
    norm = 1.0 + 1e-3  # the store's bound on stored norms in a space of unit vectors
    steps["error bound"] = median_ms(lambda q: next(iter(views.values())).search_error(q, norm), queries)
    i = iter(range(len(queries)))

    def copies(q: np.ndarray) -> None:
        for (keys, _), v in zip(found[next(i)], views.values()):
            if hasattr(v, "score_bounds"):
                v.score_bounds(keys, q)

    steps["stored copies"] = median_ms(copies, queries)
    cands = [[(keys, scores, v.search_error(q, norm)) if hasattr(v, "search_error") else (keys, scores, 0.0)
              for (keys, scores), v in zip(f, views.values())] for f, q in zip(found, queries)]
    j = iter(range(len(queries)))

    def fetch(q: np.ndarray) -> None:
        with backend.db.read() as conn:
            backend._fetch(conn, cands[next(j)], top_k, q)

    steps["fetch (and a transaction)"] = median_ms(fetch, queries)
    steps["backend.query"] = median_ms(lambda q: backend.query(q, top_k), queries)
    steps["Collection.search"] = median_ms(lambda q: col.search(vector=q, top_k=top_k), queries)

    def floor(q: np.ndarray) -> None:
        with backend.db.read() as conn:
            backend._search_state(conn)
            got = ann(q)
            keys, scores = np.concatenate([k for k, _ in got]), np.concatenate([s for _, s in got])
            best = keys[np.argpartition(-scores, top_k - 1)[:top_k]].tolist()
            rows = conn.execute(rows_by_keys(len(best)), best).fetchall()  # (the store's own statement)
            vectors_of([r[9] for r in rows], args.dim) @ q

    # the seven compared, alternated query by query (each query searched by each, a seventh of the queries apart, in
    # an order drawn anew for each round: a search right after another that swept the caches runs slower),
    # so that a change in the machine's load cannot tilt their ratios
    def with_copies(q: np.ndarray) -> None:  # the store pruning as a raw space must: by each candidate's copy
        backend._norm = None
        try:
            col.search(vector=q, top_k=top_k)
        finally:
            backend._norm = norm

    pages = backend.db.pages

    def without_read_ahead(q: np.ndarray) -> None:  # the store opened with read_ahead=False
        backend.db.pages = None
        try:
            col.search(vector=q, top_k=top_k)
        finally:
            backend.db.pages = pages

    one = backend.fanout

    def default_threads(q: np.ndarray) -> None:  # the store's default: its views searched at once
        backend.fanout = at_once
        try:
            col.search(vector=q, top_k=top_k)
        finally:
            backend.fanout = one

    compared = {"usearch-raw": raw, "Collection.search": lambda q: col.search(vector=q, top_k=top_k),
                "Collection.search (stored copies)": with_copies,
                "Collection.search (no read-ahead)": without_read_ahead, "floor": floor,
                "usearch-raw at once": raw_at_once, "Collection.search (default threads)": default_threads}
    lat = {name: np.empty(len(queries)) for name in compared}
    names = list(compared)
    hinted = [0, 0]  # reads of rows during the alternation: all, and those that asked for pages ahead
    if pages is not None:
        ahead = pages.ahead

        def counted_ahead(conn: Any, keys: Any) -> int:
            asked = ahead(conn, keys)
            hinted[0] += 1
            hinted[1] += asked > 0
            return asked

        pages.ahead = counted_ahead  # type: ignore[method-assign]
    orders = np.random.default_rng(0)  # each round in its own order, so that no search always follows another
    for n in range(len(queries)):
        order = orders.permutation(len(names))
        for k in range(len(names)):
            name = names[order[k]]
            q = queries[(n + k * len(queries) // len(names)) % len(queries)]
            t = time.perf_counter()
            compared[name](q)
            lat[name][n] = time.perf_counter() - t
    alternated = {name: float(np.median(v)) * 1e3 for name, v in lat.items()}
    if pages is not None:
        del pages.ahead
    rows_read: list[int] = []
    reads: list[int] = []  # statements reading rows, per query
    rescored = backend._rescored

    def counted(conn: Any, keys: np.ndarray, q: np.ndarray) -> Any:
        rows_read[-1] += len(keys)
        reads[-1] += 1
        return rescored(conn, keys, q)

    backend._rescored = counted
    for q in queries:
        rows_read.append(0)
        reads.append(0)
        backend.query(q, top_k)
    backend._norm = None  # the same, pruning by each candidate's stored copy
    for q in queries:
        rows_read.append(0)
        reads.append(0)
        backend.query(q, top_k)
    backend._norm = norm
    del backend._rescored
    rows_read, rows_read_copies = rows_read[:len(queries)], rows_read[len(queries):]
    # how good the one bound from the query is, on the first 200 queries' candidates: usearch's score against the
    # product of the bf16 roundings (to nearest even) of the stored vector and the query, and against the exact
    # score, in units of the bound's standard deviation (a sixth of it, less its float32 terms)
    def bf16(a: np.ndarray) -> np.ndarray:
        w = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
        return (((w + 0x7FFF + ((w >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)

    off_product, off_sd = 0.0, 0.0
    with backend.db.read() as conn:
        for f, q in zip(found[:200], queries[:200]):
            sd = 2.0**-8 * norm * float(np.abs(q).max()) * np.sqrt(2 / 3)  # (the views hold bf16)
            for (keys, scores), v in zip(f, views.values()):
                if not hasattr(v, "search_error"):
                    continue
                exact = {row[0]: -neg for neg, _, row in backend._rescored(conn, keys, q)}
                product = v.vectors(keys).astype(np.float64) @ bf16(q).astype(np.float64)
                off_product = max(off_product, float(np.abs(scores - product).max()))
                off_sd = max(off_sd, max(abs(float(s) - exact[int(k)]) for k, s in zip(keys, scores)) / sd)
    same = {"unfiltered": 0, "album 10%": 0}
    for q in queries:
        for kind, where in (("unfiltered", None), ("album 10%", {"album": "a0"})):
            hits = [h.id for h in col.search(vector=q, top_k=top_k, where=where)]
            backend._norm = None
            same[kind] += hits == [h.id for h in col.search(vector=q, top_k=top_k, where=where)]
            backend._norm = norm
    # the same small step (checking and normalizing the query vector) in a loop, and right after the raw search:
    # what the three HNSW searches' memory traffic does to the Python that runs after them
    after = {"in a loop": [], "after the HNSW searches": []}
    for q in queries:
        for where in after:
            if where != "in a loop":
                raw(q)
            t = time.perf_counter()
            col.query_vector(vector=q)
            after[where].append(time.perf_counter() - t)
    store.close()
    at_once.close()
    base = steps["usearch-raw"]
    print(f"\n## n = {args.n:,}, {args.queries} queries, warm page cache; median ms per query")
    print("| step | ms | x usearch-raw |")
    print("|---|---:|---:|")
    for name, ms in steps.items():
        print(f"| {name} | {ms:.3f} | {ms / base:.2f} |")
    raw_ms = alternated["usearch-raw"]
    print("\nalternated query by query: " + ", ".join(f"{name} {ms:.3f} ms ({ms / raw_ms:.2f}x)"
                                                    for name, ms in alternated.items()))
    print(f"views searched at once on {at_once.threads} threads: Collection.search (default threads) "
          f"{alternated['Collection.search (default threads)'] / alternated['usearch-raw at once']:.2f}x usearch-raw "
          f"at once, {alternated['Collection.search (default threads)'] / raw_ms:.2f}x usearch-raw")
    print(f"read-ahead in the alternation: {hinted[1]} of {hinted[0]} reads of rows asked for their pages")
    print(f"candidates: {sum(len(c[0]) for c in found[0])} per query; rows read from SQLite per query: median "
          f"{np.median(rows_read):.0f}, mean {np.mean(rows_read):.1f}, most {max(rows_read)} (pruning by stored "
          f"copies: median {np.median(rows_read_copies):.0f}, mean {np.mean(rows_read_copies):.1f}); searches reading "
          f"rows a second time: {np.mean(np.array(reads[:len(queries)]) > 1):.0%} (pruning by stored copies: "
          f"{np.mean(np.array(reads[len(queries):]) > 1):.0%})")
    print(f"usearch's scores: at most {off_product:.1e} from the product of the bf16 roundings; at most "
          f"{off_sd:.2f} standard deviations (of the six the bound allows) from the exact scores")
    print("hits the same with either pruning: " + ", ".join(f"{n} of {len(queries)} {kind}" for kind, n in same.items()))
    print("checking and normalizing the query vector: " + ", ".join(f"{np.median(v) * 1e6:.1f} us {where}"
                                                                   for where, v in after.items()))

if __name__ == "__main__":
    main()
