"""Search speed and recall of the embedded store, against FAISS exact (IndexFlatIP) and FAISS HNSW.

Everything runs in one process, on the same vectors and queries, one query at
a time. crossmodal searches its modalities' HNSW indexes at once, one per
usable CPU (its default ``search_threads``); with --one-thread the same store
is also searched on one thread (``search_threads=1``), as the other systems'
single queries run here (FAISS is set to one thread; Chroma's HNSW searches
one query on one thread).

Data: synthetic unit vectors of dim 512 with the structure real embeddings
have: a 32-dimensional latent mixture of 200 Gaussians, projected to 512
dimensions with noise, then normalized. (Uniform random unit vectors would
be a degenerate case: in 512 dimensions every pair has cosine 0 +- 0.04, so
no neighbour is meaningfully nearer than any other and no ANN index, ours or
FAISS's, can find them quickly.) Queries are fresh draws from the same
distribution. Modalities are assigned so that 10% of items are ``text``
(the filtered case), and 10% carry ``album="a0"`` (a metadata filter).

Reported per system: build time, p50/p99 latency, recall@10 against exact
search (FAISS IndexFlatIP on the same vectors), mean CPU time per query (the
process's, every thread's), and disk and RAM per item.
Stores run every query kind twice: "cold" right after reopening with their
files evicted from the page cache (posix_fadvise DONTNEED; with --drop-caches
the whole page cache dropped as well), then "warm" once every file was read.

RAM per item is measured in a fresh process of its own for each system
(started with ``spawn``, so it inherits nothing of this one): it imports what
the system needs, then its resident set size (VmRSS) is read, the store is
opened and every query kind is run cold and warm as above (on the first
``RAM_QUERIES`` queries, which touch the same structures), and VmRSS is read
again; the figure is the growth divided by the number of items. It counts
native memory (usearch's and FAISS's graphs, SQLite's page cache, numpy
arrays, Chroma's and LanceDB's caches) and no page cache outside the
process; nothing allocated before the first reading is freed in between, so
memory another step gave back cannot make it smaller (measured in this
process, after the ground truth freed its matrices, it came out negative).
FAISS HNSW is measured the same way on its index written to a file and read
back; faiss-flat's figure is its vectors, 4 bytes a dimension.

  crossmodal                Collection.search(vector=q, top_k=10): SQLite + per-modality HNSW (usearch),
                            candidates rescored with their exact stored vectors; everything end to end
  crossmodal text 10%       the same with modality="text" (10% of the items)
  crossmodal album 10%      the same with where={"album": "a0"} (10% of the items)
  crossmodal no read-ahead  the same store opened with read_ahead=False (with --without-read-ahead): what
                            asking the kernel for a search's uncached rows all at once saves from a cold cache
  crossmodal one thread     the same store opened with search_threads=1 (with --one-thread): its modalities'
                            indexes searched one after another in the calling thread
  chroma, lancedb           the peer embedded stores (bench/peers.py), on the same vectors, queries and filters
  faiss-flat                IndexFlatIP (exact); with 10%: an IDSelectorBatch
  faiss-hnsw                IndexHNSWFlat, M=16, efConstruction=128, efSearch=64 (the same settings as ours)
  usearch-raw               the store's own HNSW files searched directly, one after another on one thread
                            (what our layer adds on top: compare crossmodal one thread)

Usage
  python bench/search.py --n 100000                    # validation run (about 5 minutes on 2 busy cores)
  python bench/search.py --n 1000000 --queries 2000    # the target run, on a quiet machine
  python bench/search.py --n 20000 --queries 200       # quick check
  python bench/search.py --n 200000 --queries 300 --no-faiss-hnsw --peers chroma lancedb --expansion-search 32
                                                       # against the peer stores (their packages installed), and
                                                       # crossmodal also with the beam that matches their recall
"""

from __future__ import annotations

import argparse
import gc
import importlib
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("RAM per item needs /proc/self/status (Linux)")


def rss_mb() -> float:
    return rss_bytes() / 2**20


def synthetic(n: int, dim: int, seed: int, latent: int = 32, clusters: int = 200) -> np.ndarray:
    """Clustered unit vectors (see the module docstring), generated in blocks to bound memory."""
    rng = np.random.default_rng(0)  # the same mixture for items and queries
    centres = rng.standard_normal((clusters, latent)).astype(np.float32) * 2.0
    proj = rng.standard_normal((latent, dim)).astype(np.float32) / np.sqrt(latent)
    draw = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = centres[draw.integers(0, clusters, m)] + draw.standard_normal((m, latent)).astype(np.float32)
        x = z @ proj + 0.15 * draw.standard_normal((m, dim)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed(fn: Any, queries: np.ndarray) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
    """Each query's results, wall time, and CPU time (this process's, every thread's: a system that searches
    one query on several threads spends more CPU than wall time)."""
    results, lat, cpu = [], np.empty(len(queries)), np.empty(len(queries))
    for i, q in enumerate(queries):
        c, t = time.process_time(), time.perf_counter()
        results.append(fn(q))
        lat[i], cpu[i] = time.perf_counter() - t, time.process_time() - c
    return results, lat, cpu


def recall(found: list[list[int]], truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]))


def row(name: str, lat: np.ndarray, cpu: np.ndarray, rec: float, build_s: float | None, disk: float | None,
        ram: float | None) -> dict:
    return {"system": name, "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 3), "recall@10": round(rec, 4),
            "cpu_ms": round(float(np.mean(cpu)) * 1e3, 3),
            "build_s": None if build_s is None else round(build_s, 1),
            "disk_bytes_per_item": None if disk is None else round(disk),
            "ram_bytes_per_item": None if ram is None else round(ram)}


def warm_page_cache(path: Path) -> None:
    """Read every file of the store once, as a long-running server's page cache would hold them."""
    for p in sorted(path.rglob("*")):
        if p.is_file():
            with open(p, "rb") as fh:
                while fh.read(1 << 24):
                    pass


#: queries of each kind run in the process that measures RAM per item
RAM_QUERIES = 200


def store_searches(col: Any, k: int) -> dict[str, Any]:
    """The query kinds run on crossmodal's collection ``col``: unfiltered, modality="text", album="a0"."""
    return {"": lambda q: [int(h.id) for h in col.search(vector=q, top_k=k)],
            " text 10%": lambda q: [int(h.id) for h in col.search(vector=q, top_k=k, modality="text")],
            " album 10%": lambda q: [int(h.id) for h in col.search(vector=q, top_k=k, where={"album": "a0"})]}


def peer_searches(peer: Any, k: int) -> dict[str, Any]:
    """The same query kinds on a peer store (bench/peers.py)."""
    return {"": lambda q: peer.search(q, k), " text 10%": lambda q: peer.search(q, k, "modality", "text"),
            " album 10%": lambda q: peer.search(q, k, "album", "a0")}


def _resident(system: str, path: str, queries: np.ndarray, k: int) -> int:
    """In a fresh process: VmRSS growth from opening ``system``'s store at ``path`` and running every query kind
    cold and warm (see the module docstring)."""
    if system == "crossmodal":
        import crossmodal
        from crossmodal.stores.embedded.views import _usearch_index

        _usearch_index()  # usearch's module, loaded as the store loads it
    elif system == "faiss-hnsw":
        import faiss

        faiss.omp_set_num_threads(1)
    else:
        from peers import PEERS  # noqa: PLC0415 (bench/ is on sys.path in this process too)

        peer = PEERS[system](Path(path))
        for module in peer.modules:
            importlib.import_module(module)
    gc.collect()
    before = rss_bytes()
    if system == "crossmodal":
        store = crossmodal.open_store(Path(path))
        searches = store_searches(store.collection("bench"), k)
    elif system == "faiss-hnsw":
        index = faiss.read_index(path)
        index.hnsw.efSearch = 64
        searches = {"": lambda q: index.search(q[None], k)[1][0].tolist()}
    else:
        peer.open()
        searches = peer_searches(peer, k)
    for phase in ("cold", "warm"):
        if phase == "warm" and system != "faiss-hnsw":
            warm_page_cache(Path(path))
        for fn in searches.values():
            for q in queries[:RAM_QUERIES]:
                fn(q)
    gc.collect()
    grown = rss_bytes() - before
    if system == "crossmodal":
        store.close()
    elif system != "faiss-hnsw":
        peer.close()
    return grown


def resident(system: str, path: Path, queries: np.ndarray, k: int, n: int) -> float:
    """RAM per item of ``system`` (``crossmodal``, ``faiss-hnsw`` or a peer's name), measured in a fresh process."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_resident, (system, str(path), queries, k)) / n


def bench(n: int, dim: int, n_queries: int, k: int, workdir: Path, faiss_hnsw: bool, reuse: bool = False,
          expansion: tuple[int, ...] = (),
          peers: tuple[str, ...] = (), drop_all: bool = False, crossmodal_too: bool = True,
          without_read_ahead: bool = False, one_thread: bool = False) -> list[dict]:
    import faiss

    import crossmodal
    from crossmodal import Record
    from crossmodal.space import Space

    faiss.omp_set_num_threads(1)
    x = synthetic(n, dim, seed=1)
    queries = synthetic(n_queries, dim, seed=2)
    modality = np.where(np.arange(n) % 10 == 3, "text", np.where(np.arange(n) % 2 == 0, "image", "pair"))
    album = np.where((np.arange(n) // 3) % 10 == 7, "a0", "other")  # 10%, of every modality
    rows: list[dict] = []

    # exact ground truth (and the faiss-flat contender)
    flat = faiss.IndexFlatIP(dim)
    t = time.perf_counter()
    flat.add(x)
    flat_build = time.perf_counter() - t
    truth = flat.search(queries, k)[1]
    text_ids = np.flatnonzero(modality == "text")
    album_ids = np.flatnonzero(album == "a0")
    truth_text = text_ids[np.argsort(-(queries @ x[text_ids].T), axis=1)[:, :k]]
    truth_album = album_ids[np.argsort(-(queries @ x[album_ids].T), axis=1)[:, :k]]
    found, lat, cpu = timed(lambda q: flat.search(q[None], k)[1][0].tolist(), queries)
    rows.append(row("faiss-flat", lat, cpu, recall(found, truth, k), flat_build, None, 4 * dim))
    sel = faiss.SearchParameters(sel=faiss.IDSelectorBatch(text_ids.astype(np.int64)))
    found, lat, cpu = timed(lambda q: flat.search(q[None], k, params=sel)[1][0].tolist(), queries)
    rows.append(row("faiss-flat text 10%", lat, cpu, recall(found, truth_text, k), None, None, None))
    flat.reset()  # frees its vectors
    gc.collect()

    if faiss_hnsw:
        hnsw = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 128
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        t = time.perf_counter()
        hnsw.add(x)
        build = time.perf_counter() - t
        faiss.omp_set_num_threads(1)
        hnsw.hnsw.efSearch = 64
        found, lat, cpu = timed(lambda q: hnsw.search(q[None], k)[1][0].tolist(), queries)
        workdir.mkdir(parents=True, exist_ok=True)
        saved = workdir / "faiss-hnsw.index"
        faiss.write_index(hnsw, str(saved))
        hnsw.reset()
        del hnsw
        gc.collect()
        rows.append(row("faiss-hnsw", lat, cpu, recall(found, truth, k), build, None,
                        resident("faiss-hnsw", saved, queries, k, n)))
        saved.unlink()

    truths = {"": truth, " text 10%": truth_text, " album 10%": truth_album}
    if crossmodal_too:
        # crossmodal's embedded store, built through the public API
        space = Space(model="synthetic", dim=dim, normalized=True, fingerprint="bench")

        class Vectors:
            def __init__(self) -> None:
                self.space, self.name = space, "synthetic"

        path = workdir / "store"
        build: float | None = None
        if reuse and (path / "store.db").exists():  # built by an earlier run with the same --n (build time not re-measured)
            store = crossmodal.open_store(path)
            if store.collection("bench").count() != n:
                raise SystemExit(f"{path} holds {store.collection('bench').count()} items, not {n}: drop --reuse")
            store.close()
        else:
            store = crossmodal.open_store(path)
            col = store.collection("bench", model=Vectors())  # type: ignore[arg-type]
            t = time.perf_counter()
            for start in range(0, n, 10_000):
                col.upsert([Record(str(i), str(modality[i]), f"item/{i}", x[i], metadata={"album": str(album[i])})
                            for i in range(start, min(n, start + 10_000))])
            store.close()  # brings the HNSW files up to date and saves them
            build = time.perf_counter() - t
        disk = dir_size(path) / n
        gc.collect()
        drop_page_cache(path, drop_all)
        store = crossmodal.open_store(path)
        col = store.collection("bench")
        ours = passes("crossmodal", store_searches(col, k), truths, queries, k, path, build, disk)
        rows += ours

        # the same HNSW files searched directly: what the store layer costs on top
        views = [col.backend.derived(m).view for m in ("image", "text", "pair")]

        def raw(q: np.ndarray) -> list[int]:
            keys, scores = [], []
            for v in views:
                kk, ss = v.search(q, k)
                keys.append(kk)
                scores.append(ss)
            kk, ss = np.concatenate(keys), np.concatenate(scores)
            return kk[np.argsort(-ss)[:k]].tolist()

        key_to_id = {}
        with store.backend.db.read() as conn:
            for key, item_id in conn.execute("SELECT key, id FROM items"):
                key_to_id[key] = int(item_id)
        found, lat, cpu = timed(lambda q: [key_to_id[key] for key in raw(q)], queries)
        rows.append(row("usearch-raw", lat, cpu, recall(found, truth, k), None, None, None))
        store.close()
        del col, store, views
        gc.collect()
        ours[0]["ram_bytes_per_item"] = round(resident("crossmodal", path, queries, k, n))
        # the same store with a narrower (or wider) HNSW beam (recall traded for speed), and without read-ahead
        variants = [(f"crossmodal ef={ef}", {"expansion_search": ef}) for ef in expansion]
        if without_read_ahead:
            variants.insert(0, ("crossmodal no read-ahead", {"read_ahead": False}))
        if one_thread:
            variants.insert(0, ("crossmodal one thread", {"search_threads": 1}))
        for name, options in variants:
            drop_page_cache(path, drop_all)
            store = crossmodal.open_store(path, **options)
            rows += passes(name, store_searches(store.collection("bench"), k), truths, queries, k, path, None, None)
            store.close()
            del store
            gc.collect()

    for name in peers:
        from peers import PEERS  # noqa: PLC0415 (bench/ is on sys.path when run as a script)

        try:
            peer = PEERS[name](workdir / name)
        except KeyError:
            raise SystemExit(f"unknown peer {name!r}; known: {', '.join(PEERS)}") from None
        try:
            peer_build = peer.build(x, modality, album)
        except ImportError as exc:
            print(f"skipping {name}: {exc} (pip install it into the benchmark's environment)", file=sys.stderr)
            continue
        gc.collect()
        drop_page_cache(peer.path, drop_all)
        peer.open()
        theirs = passes(name, peer_searches(peer, k), truths, queries, k, peer.path, peer_build,
                        dir_size(peer.path) / n)
        peer.close()
        theirs[0]["ram_bytes_per_item"] = round(resident(name, peer.path, queries, k, n))
        rows += theirs
        shutil.rmtree(peer.path, ignore_errors=True)
    return rows


def drop_page_cache(path: Path, everything: bool = False) -> None:
    """Evict a store's files from the OS page cache (no root needed: their pages are clean once written); with
    ``everything``, the whole page cache too (``echo 3 > /proc/sys/vm/drop_caches``: root only, else refused)."""
    os.sync()
    if everything:
        try:
            with open("/proc/sys/vm/drop_caches", "w") as fh:
                fh.write("3\n")
        except OSError as exc:
            raise SystemExit(f"--drop-caches: cannot drop the page cache ({exc}); run without it") from None
    for p in path.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def passes(name: str, searches: dict[str, Any], truths: dict[str, np.ndarray], queries: np.ndarray, k: int,
           path: Path, build: float | None, disk: float | None) -> list[dict]:
    """Every query kind from a cold page cache (the store just opened after its files were evicted), then again
    once every file was read (a long-running server's cache). RAM is left for :func:`resident`."""
    out = []
    for phase in ("cold", "warm"):
        if phase == "warm":
            warm_page_cache(path)
        for kind, fn in searches.items():
            found, lat, cpu = timed(fn, queries)
            out.append(row(f"{name}{kind} {phase}", lat, cpu, recall(found, truths[kind], k), build if not out else None,
                           disk if not out else None, None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--no-faiss-hnsw", action="store_true", help="Skip FAISS HNSW (its build is the slowest).")
    parser.add_argument("--workdir", type=Path, default=None, help="Where the store is built (default: a temp dir).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    parser.add_argument("--peers", nargs="*", default=["chroma", "lancedb"],
                        help="Peer stores built and searched in the same run (bench/peers.py; none: --peers).")
    parser.add_argument("--drop-caches", action="store_true",
                        help="For the cold passes drop the whole page cache (root only), not only the store's files.")
    parser.add_argument("--peers-only", action="store_true",
                        help="Only the FAISS rows and the peers (to run them in another process than crossmodal).")
    parser.add_argument("--expansion-search", type=int, nargs="*", default=[], metavar="EF",
                        help="Also search crossmodal's store opened with each of these HNSW beam widths (default 64), "
                             "e.g. one that matches a peer's recall.")
    parser.add_argument("--without-read-ahead", action="store_true",
                        help="Also search crossmodal's store opened with read_ahead=False (what the hints save cold).")
    parser.add_argument("--one-thread", action="store_true",
                        help="Also search crossmodal's store opened with search_threads=1 (one index at a time).")
    parser.add_argument("--reuse", action="store_true",
                        help="Search the store an earlier run left in --workdir instead of building it again.")
    args = parser.parse_args()
    results = {}
    for n in args.n:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crossmodal-bench-"))
        try:
            rows = bench(n, args.dim, args.queries, args.k, workdir, not args.no_faiss_hnsw, args.reuse,
                         tuple(args.expansion_search), tuple(args.peers), args.drop_caches, not args.peers_only,
                         args.without_read_ahead, args.one_thread)
        finally:
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
        results[n] = rows
        print(f"\n## n = {n:,}, dim {args.dim}, {args.queries} queries, top-{args.k}, load {os.getloadavg()[0]:.1f}")
        print("| system | p50 ms | p99 ms | recall@10 | CPU ms/query | build s | disk B/item | RAM B/item |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            cells = [r["system"], r["p50_ms"], r["p99_ms"], r["recall@10"], r["cpu_ms"], r["build_s"],
                     r["disk_bytes_per_item"], r["ram_bytes_per_item"]]
            print("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
        by = {r["system"]: r for r in rows}
        print()
        if "crossmodal warm" not in by:
            continue
        for kind, phase, name in itertools.product(("", " text 10%", " album 10%"), ("cold", "warm"),
                                                   ["crossmodal"]
                                                   + (["crossmodal one thread"] if args.one_thread else [])
                                                   + (["crossmodal no read-ahead"] if args.without_read_ahead else [])
                                                   + [f"crossmodal ef={ef}" for ef in args.expansion_search]):
                ours = by[f"{name}{kind} {phase}"]
                peers = [by[f"{p}{kind} {phase}"] for p in args.peers if f"{p}{kind} {phase}" in by]
                if peers:
                    best = min(peers, key=lambda r: r["p50_ms"])
                    print(f"p50{kind or ' unfiltered'} {phase}: {name} {ours['p50_ms']} ms (recall "
                          f"{ours['recall@10']}) / {best['system']} {best['p50_ms']} ms (recall {best['recall@10']})"
                          f" = {ours['p50_ms'] / best['p50_ms']:.2f}x")
        for name in ["crossmodal"] + (["crossmodal one thread"] if args.one_thread else []):
            print(f"p50 warm unfiltered {name} / usearch-raw: "
                  f"{by[f'{name} warm']['p50_ms'] / by['usearch-raw']['p50_ms']:.2f}x")
        if "faiss-hnsw" in by:
            print(f"p50 warm crossmodal / faiss-hnsw: {by['crossmodal warm']['p50_ms'] / by['faiss-hnsw']['p50_ms']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
