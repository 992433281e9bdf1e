"""Retrieval quality of dense, keyword and hybrid search where literal words matter.

The case users of photo search hit: what a picture shows is in its pixels, while a word the user types
literally (a photographer's name, a place) is only in its file or folder name. A tiny CLIP is trained on
generated captioned shapes (``crossmodal.testing.demo``, the README quickstart's model, about a minute);
then ``--per-combo`` pictures of every (colour, shape, name) combination are written as
``NAME/NAME_NNNN.png``: the colour and shape are not in the file name, so only the pixels say what a
picture shows, and only its name says who took it.

Queries, each with its set of relevant images, scored with the evaluation harness's recall@k
(``crossmodal.eval.metrics.recall_at_k``: a query counts when a relevant image is in its top k) and MRR:

* ``mixed``: "a red circle by kowalczyk" -> the red circles in kowalczyk's folder (``per_combo`` images);
* ``visual``: "a red circle" -> every red circle (dense's own case; keyword finds nothing here);
* ``literal``: "kowalczyk" -> every picture in that folder (keyword's own case).

Each query runs with ``using="dense"``, ``"keyword"`` and ``"hybrid"`` (reciprocal rank fusion, k = 60) on
the same collection::

    python bench/hybrid_quality.py --work /tmp/bench-hybrid-quality [--store URI] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import crossmodal
from crossmodal.eval.metrics import recall_at_k
from crossmodal.testing.shapes import COLORS, SHAPES, caption, render

NAMES = ("kowalczyk", "abernathy", "okonkwo", "lindqvist", "haraldsen", "moreau", "tanaka", "villanueva",
         "petrakis", "oyelaran", "brennan", "sato", "ivanova", "delacroix", "nakamura", "fitzgerald",
         "castellano", "novak", "holmberg", "achebe", "kimura", "marchetti", "zielinski", "duarte")
SIGNALS = ("dense", "keyword", "hybrid")
KS = (1, 5, 10)


def _model(work: Path) -> Path:
    from crossmodal.testing.demo import make_demo

    model = work / "demo" / "model"
    if not (model / "crossmodal.json").exists():
        print("training the tiny CLIP (about a minute)...", file=sys.stderr)
        make_demo(work / "demo", per_caption=1)
    return model


def _pictures(folder: Path, per_combo: int, seed: int) -> dict[str, tuple[str, str, str]]:
    """Write the pictures; file path -> (name, colour, shape)."""
    rng = np.random.default_rng(seed)
    truth: dict[str, tuple[str, str, str]] = {}
    for name in NAMES:
        (folder / name).mkdir(parents=True, exist_ok=True)
        combos = [(c, s) for c in COLORS for s in SHAPES for _ in range(per_combo)]
        order = rng.permutation(len(combos))
        for n, i in enumerate(order):
            color, shape = combos[i]
            path = folder / name / f"{name}_{n:04d}.png"
            render(color, shape, size=128, rng=rng).save(path)
            truth[str(path)] = (name, color, shape)
    return truth


def _queries(truth: dict[str, tuple[str, str, str]]) -> dict[str, list[tuple[str, set[str]]]]:
    by: dict[str, list[tuple[str, set[str]]]] = {"mixed": [], "visual": [], "literal": []}
    for name in NAMES:
        for color in COLORS:
            for shape in SHAPES:
                want = {p for p, t in truth.items() if t == (name, color, shape)}
                by["mixed"].append((f"{caption(color, shape)} by {name}", want))
    for color in COLORS:
        for shape in SHAPES:
            by["visual"].append((caption(color, shape), {p for p, t in truth.items() if t[1:] == (color, shape)}))
    for name in NAMES:
        by["literal"].append((name, {p for p, t in truth.items() if t[0] == name}))
    return by


def _rank(hits: list[crossmodal.Hit], relevant: set[str]) -> int:
    for i, hit in enumerate(hits):
        if hit.path in relevant:
            return i
    return 10**9


def run(work: Path, store: str | None, per_combo: int, seed: int, top_k: int) -> dict:
    model_dir = _model(work)
    folder = work / "pictures"
    truth = _pictures(folder, per_combo, seed)
    model = crossmodal.load_model(str(model_dir))
    with tempfile.TemporaryDirectory(prefix="hybrid-quality-") as tmp:
        st = crossmodal.open_store(store or tmp)
        name = f"quality-{int(time.time())}"
        col = st.collection(name, model=model, root=str(folder))
        try:
            col.add_images(sorted(truth))
            results: dict[str, dict[str, dict[str, float]]] = {}
            for kind, queries in _queries(truth).items():
                results[kind] = {}
                for using in SIGNALS:
                    ranks = np.array([_rank(col.search(text, top_k=top_k, modality="image", using=using), want)
                                      for text, want in queries])
                    row = {f"R@{k}": recall_at_k(ranks, k) for k in KS}
                    row["MRR"] = float(np.mean([1.0 / (r + 1) if r < top_k else 0.0 for r in ranks]))
                    results[kind][using] = row
        finally:
            st.delete_collection(name)
            st.close()
    return {"images": len(truth), "names": len(NAMES), "per_combo": per_combo, "store": store or "embedded",
            "queries": {k: len(v) for k, v in _queries(truth).items()}, "results": results}


def table(report: dict) -> str:
    lines = ["| queries | signal | R@1 | R@5 | R@10 | MRR@100 |", "|---|---|---:|---:|---:|---:|"]
    for kind, rows in report["results"].items():
        for using, row in rows.items():
            lines.append(f"| {kind} ({report['queries'][kind]}) | {using} | {row['R@1']:.3f} | {row['R@5']:.3f} | "
                         f"{row['R@10']:.3f} | {row['MRR']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-hybrid-quality")
    ap.add_argument("--store", help="a store URI (default: a fresh embedded store)")
    ap.add_argument("--per-combo", type=int, default=2, help="pictures per (colour, shape, name)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    report = run(args.work, args.store, args.per_combo, args.seed, top_k=100)
    print(f"{report['images']} images, {report['names']} names, store {report['store']}")
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
