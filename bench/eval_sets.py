"""Write generated evaluation sets for ``crossmodal eval`` (docs/benchmarks.md, "Evaluation").

Under ``OUT`` (default ``.cache/bench/eval``):

* ``shapes/pictures/``: ``--per-class`` pictures of each of the 12 coloured shapes ("a red circle") that the tiny
  trained CLIP (``crossmodal.testing.train``) knows, drawn at ``--size`` pixels at random positions and scales;
* ``shapes/captions.csv``: a Karpathy-style ``image,caption`` file, 1-3 captions per picture
  ("a photo of a red circle, picture 7"); ``shapes/captions.tsv``: the same as a crossmodal captions TSV;
* ``shapes/classes/``: the same pictures in one folder per class (``red_circle/``), for ``eval zeroshot``;
* with ``--tiny-model``, ``tiny-clip/``: the tiny CLIP the tests' ``trained_model`` fixture trains (400 steps on
  32-pixel shapes), exported to the ONNX layout (needs the torch extra and CLIP's BPE vocabulary in
  ``.cache/test-assets``, which ``.ci/run`` fetches).

Usage::

    python bench/eval_sets.py [--out DIR] [--per-class 20] [--size 32] [--seed 0] [--tiny-model]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from crossmodal.testing.shapes import COLORS, SHAPES, render

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("", "a photo of ", "a drawing of ")


def write_shapes(out: Path, *, per_class: int, size: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    root = out / "shapes"
    if root.exists():
        shutil.rmtree(root)
    (root / "pictures").mkdir(parents=True)
    csv_rows, tsv_rows = ["image,caption"], ["file\tcaption"]
    i = 0
    for copy in range(per_class):
        for color in COLORS:
            for shape in SHAPES:
                rel = f"pictures/{color}_{shape}_{copy}.png"
                render(color, shape, size=size, rng=rng).save(root / rel)
                folder = root / "classes" / f"{color}_{shape}"
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / rel, folder / f"{copy}.png")
                for n in range(1 + i % 3):
                    caption = f"{PREFIXES[n]}a {color} {shape}, picture {i}"
                    csv_rows.append(f"{rel},{caption}")
                    tsv_rows.append(f"{rel}\t{caption}")
                i += 1
    (root / "captions.csv").write_text("\n".join(csv_rows) + "\n", encoding="utf-8")
    (root / "captions.tsv").write_text("\n".join(tsv_rows) + "\n", encoding="utf-8")
    return root


def write_tiny_model(out: Path) -> Path:
    from crossmodal.families import export_onnx
    from crossmodal.testing.models import find_clip_bpe
    from crossmodal.testing.train import train_tiny_clip

    bpe = find_clip_bpe(search=[ROOT / ".cache" / "test-assets"])
    source = train_tiny_clip(out / "tiny-clip-transformers", steps=400, bpe=bpe)
    target = out / "tiny-clip"
    if target.exists():
        shutil.rmtree(target)
    export_onnx(source, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "bench" / "eval")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny-model", action="store_true", help="Also train and export the tiny CLIP.")
    args = parser.parse_args(argv)
    root = write_shapes(args.out, per_class=args.per_class, size=args.size, seed=args.seed)
    n = 12 * args.per_class
    print(f"{root}: {n} pictures, {len((root / 'captions.csv').read_text().splitlines()) - 1} captions, 12 classes")
    if args.tiny_model:
        print(f"tiny model: {write_tiny_model(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
