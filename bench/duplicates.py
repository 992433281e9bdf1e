"""Near-duplicate finding at scale: time of ``Collection.duplicates`` and the near tier's precision and recall.

Data: the clustered unit vectors of ``bench/search.py`` (modalities and filters as there), with duplicates
planted: a fraction of the items (``--planted``, default 2%) is replaced by a noisy copy of an earlier item of
the same modality, the noise drawn so that the copies' cosines spread from about 0.89 to 0.995 on either side
of the threshold (so both tiers of the check, found and rightly not found, are exercised); a smaller fraction
(``--exact``, default 0.2%) are copies with the same content hash (exact duplicates).

Reported:

* at ``--n``: the time ``Collection.duplicates(threshold)`` takes (all cores the machine has), the groups and
  links found, and, for ``--check`` items drawn at random, recall of their near links against an exact scan of
  all ``--n`` vectors (precision is the share of reported links whose exact cosine reaches the threshold);
* on a separate collection of ``--sample`` items made the same way, with every modality on its HNSW index
  (``exact_limit=1000``, as every modality is at a million items): precision and recall of the near tier's
  links against an exact all-pairs computation, and the share of exact pairs whose items end up in one group.

Usage
  python bench/duplicates.py --n 1000000                     # the target run
  python bench/duplicates.py --n 1000000 --workdir /tmp/dups-1m --reuse   # search a store built before
  python bench/duplicates.py --n 20000 --sample 5000         # quick check
  python bench/duplicates.py --n 1000000 --store /tmp/bench/search-work   # the store of bench/search.py --workdir
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from search import synthetic  # noqa: E402


def planted(n: int, dim: int, fraction: float, exact: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vectors, modality, content hashes): ``synthetic`` with near and exact copies of earlier items."""
    x = synthetic(n, dim, seed=seed)
    modality = np.where(np.arange(n) % 10 == 3, "text", np.where(np.arange(n) % 2 == 0, "image", "pair"))
    hashes = np.asarray([f"sha256:{i:08x}" for i in range(n)], dtype=object)
    rng = np.random.default_rng(seed + 100)
    copies = rng.choice(np.arange(10_000 if n > 20_000 else 100, n), size=int(fraction * n), replace=False)
    for i in copies:
        j = int(i) - 10 * int(rng.integers(1, min(int(i) // 10, 50_000) + 1))  # same residue mod 10: same modality
        s = rng.uniform(0.1, 0.52)  # cosine of the copy to its original about 1 / sqrt(1 + s^2): 0.89 to 0.995
        v = x[j] + s * rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim)
        x[i] = v / np.linalg.norm(v)
    same = rng.choice(np.setdiff1d(np.arange(100, n), copies), size=int(exact * n), replace=False)
    for i in same:
        j = int(i) - 10 * int(rng.integers(1, min(int(i) // 10, 50_000) + 1))
        x[i], hashes[i] = x[j], hashes[j]
    return x, modality, hashes


def build(path: Path, x: np.ndarray, modality: np.ndarray, hashes: np.ndarray, exact_limit: int | None) -> Any:
    import crossmodal
    from crossmodal import Record
    from crossmodal.space import Space

    space = Space(model="synthetic", dim=x.shape[1], normalized=True, fingerprint="bench")

    class Vectors:
        def __init__(self) -> None:
            self.space, self.name = space, "synthetic"

    store = crossmodal.open_store(path, exact_limit=exact_limit)  # None: the default
    col = store.collection("bench", model=Vectors())  # type: ignore[arg-type]
    for start in range(0, len(x), 10_000):
        col.upsert([Record(str(i), str(modality[i]), f"item/{i}", x[i], content_hash=str(hashes[i]))
                    for i in range(start, min(len(x), start + 10_000))])
    store.close()


class Recording:
    """A collection whose backend remembers every near link it reports (what ``find_duplicates`` needs of one)."""

    def __init__(self, col: Any) -> None:
        self.backend = self
        self.inner = col.backend
        self.links: list[tuple[str, str, float]] = []

    def scan(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.scan(*args, **kwargs)

    def near_pairs(self, *args: Any, **kwargs: Any) -> Iterator[tuple[str, str, float]]:
        for link in self.inner.near_pairs(*args, **kwargs):
            self.links.append(link)
            yield link


def exact_pairs(x: np.ndarray, modality: np.ndarray, rows: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Every pair (a, b), a in ``rows``, b any other item of its modality, with cosine >= threshold."""
    out: set[tuple[int, int]] = set()
    step = max(1, 50_000_000 // len(x))  # a block of scores of at most 200 MB
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        scores = x[chunk] @ x.T
        for r, c in zip(*np.nonzero(scores >= threshold)):
            a, b = int(chunk[r]), int(c)
            if a != b and modality[a] == modality[b]:
                out.add((min(a, b), max(a, b)))
    return out


def run(path: Path, x: np.ndarray, modality: np.ndarray, hashes: np.ndarray, threshold: float,
        reuse: bool, exact_limit: int | None = None) -> tuple[float, Any, Recording, float | None]:
    import crossmodal
    from crossmodal.duplicates import find_duplicates

    build_s = None
    if not (reuse and (path / "store.db").exists()):
        t = time.perf_counter()
        build(path, x, modality, hashes, exact_limit)
        build_s = time.perf_counter() - t
    store = crossmodal.open_store(path, exact_limit=exact_limit)  # None: the default
    col = store.collection("bench")
    if col.count() != len(x):
        raise SystemExit(f"{path} holds {col.count()} items, not {len(x)}: drop --reuse")
    rec = Recording(col)
    t = time.perf_counter()
    groups = find_duplicates(rec, threshold)  # type: ignore[arg-type]
    took = time.perf_counter() - t
    store.close()
    return took, groups, rec, build_s


def scores(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float]:
    """(precision, recall) of the found pairs; nan where there is nothing to divide by."""
    precision = len(found & truth) / len(found) if found else float("nan")
    return precision, (len(found & truth) / len(truth) if truth else float("nan"))


def near_links(rec: Recording, hashes: np.ndarray) -> set[tuple[int, int]]:
    """The reported near links that are not exact duplicates (same hash), as sorted item-number pairs."""
    out = set()
    for a, b, _ in rec.links:
        i, j = int(a), int(b)
        if hashes[i] != hashes[j]:
            out.add((min(i, j), max(i, j)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--planted", type=float, default=0.02, help="Share of items that are noisy copies.")
    parser.add_argument("--exact", type=float, default=0.002, help="Share of items with a copy's content hash.")
    parser.add_argument("--check", type=int, default=2_000, help="Items of --n checked against an exact scan.")
    parser.add_argument("--sample", type=int, default=20_000, help="Size of the all-pairs collection (0: none).")
    parser.add_argument("--store", type=Path, default=None,
                        help="Time the store bench/search.py left in this folder (its vectors: no planted copies) "
                             "instead of building one; --n must be its size.")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--reuse", action="store_true", help="Use the store an earlier run left in --workdir.")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crossmodal-dups-"))

    if args.store is not None:  # bench/search.py's items: its vectors and modalities, no content hashes
        x = synthetic(args.n, args.dim, seed=1)
        modality = np.where(np.arange(args.n) % 10 == 3, "text", np.where(np.arange(args.n) % 2 == 0, "image", "pair"))
        hashes = np.arange(args.n).astype(str).astype(object)
        took, groups, rec, build_s = run(args.store / "store", x, modality, hashes, args.threshold, True)
    else:
        x, modality, hashes = planted(args.n, args.dim, args.planted, args.exact, seed=1)
        took, groups, rec, build_s = run(workdir / "store", x, modality, hashes, args.threshold, args.reuse)
    found = near_links(rec, hashes)
    near = [g for g in groups if g.kind == "near"]
    print(f"\n## duplicates at n = {args.n:,}, threshold {args.threshold}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"build {'(reused)' if build_s is None else f'{build_s:.0f} s'}; Collection.duplicates {took:.1f} s "
          f"({took / 60:.2f} min): {len(groups)} groups ({len(groups) - len(near)} exact, {len(near)} near), "
          f"{len(rec.links)} links")
    if args.check:
        rows = np.random.default_rng(7).choice(args.n, size=min(args.check, args.n), replace=False)
        truth = {p for p in exact_pairs(x, modality, rows, args.threshold) if hashes[p[0]] != hashes[p[1]]}
        picked = set(rows.tolist())
        mine = {p for p in found if p[0] in picked or p[1] in picked}
        p, r = scores(mine, truth)
        print(f"{len(rows)} random items against an exact scan of all {args.n:,}: {len(truth)} near pairs; "
              f"precision {p:.4f}, recall {r:.4f}")
    if args.sample:
        xs, ms, hs = planted(args.sample, args.dim, args.planted, args.exact, seed=3)
        # every modality on its HNSW index, as at a million items (the default limit would search these exactly)
        stook, sgroups, srec, _ = run(workdir / "sample", xs, ms, hs, args.threshold, args.reuse, exact_limit=1_000)
        truth = {p for p in exact_pairs(xs, ms, np.arange(args.sample), args.threshold) if hs[p[0]] != hs[p[1]]}
        mine = near_links(srec, hs)
        p, r = scores(mine, truth)
        group_of = {int(i): g for g, grp in enumerate(sgroups) for i in grp.ids}
        together = sum(1 for a, b in truth if a in group_of and group_of[a] == group_of.get(b))
        print(f"all pairs of a {args.sample:,}-item collection (its duplicates: {stook:.1f} s): {len(truth)} near pairs; "
              f"links: precision {p:.4f}, "
              f"recall {r:.4f}; pairs in one group: {together / len(truth) if truth else float('nan'):.4f}")


if __name__ == "__main__":
    main()
