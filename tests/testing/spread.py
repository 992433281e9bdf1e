"""Measure how the semantic tests' counts and the README's scores spread across seeds and CPUs.

The tiny CLIP's training is bit-reproducible on one machine, but another CPU's kernels round differently and
training amplifies that into a slightly different model. This trains the tests' model (the defaults of
:func:`crossmodal.testing.train.train_tiny_clip`) under several seeds and simulated CPUs, and measures on each
exactly what the tests assert (it calls the tests' own counting functions)::

    python -m tests.testing.spread OUT [--seeds 10] [--jobs 2]

A simulated CPU is a different torch thread count for training, or the same machine with its kernels held back:
``ATEN_CPU_CAPABILITY=default`` (torch's scalar kernels instead of AVX2), ``ONEDNN_MAX_CPU_ISA=SSE41`` (oneDNN's
matrix kernels) or ``MKL_CBWR=COMPATIBLE`` (MKL's). Each gives different model bytes for the same seed.

It prints, for each count, the values over all runs, and for seed 0 (the demo's and the tests' model) how far each
README score moves and the smallest score gap between README hits. Run it from the checkout's root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# (name, environment, training threads): the machine variants, each run for seed 0 and some for other seeds.
VARIANTS: list[tuple[str, dict[str, str], int]] = [
    ("base", {}, 1),
    ("threads2", {}, 2),
    ("threads4", {}, 4),
    ("aten-default", {"ATEN_CPU_CAPABILITY": "default"}, 1),
    ("onednn-sse41", {"ONEDNN_MAX_CPU_ISA": "SSE41"}, 1),
    ("mkl-compatible", {"MKL_CBWR": "COMPATIBLE"}, 1),
]
COUNTS = ("text_to_image", "image_to_text", "pair_to_image", "caption_finds_picture", "own_caption_first", "page")


def measure(out: Path, seed: int, threads: int) -> dict:
    """Train, export and measure one model (in this process)."""
    import numpy as np

    import crossmodal
    from crossmodal.families import export_onnx
    from crossmodal.testing.demo import demo_pictures
    from crossmodal.testing.models import find_clip_bpe
    from crossmodal.testing.shapes import COLORS, SHAPES, caption, render
    from crossmodal.testing.train import TrainOptions, shape_captions, train_tiny_clip

    from ..test_collection import image_to_text_right, make_shapes_collection, pair_to_image_right, text_to_image_right
    from ..test_embedder import caption_finds_picture_hits
    from .test_demo import own_caption_first

    started = time.process_time()
    trained = train_tiny_clip(out / "transformers", seed=seed, bpe=find_clip_bpe(search=[ROOT / ".cache" / "test-assets"]),
                              options=TrainOptions(threads=threads))
    cpu = time.process_time() - started
    export_onnx(trained, out / "model", overwrite=True)
    model = crossmodal.load_model(out / "model", cache_dir=out / "cache")
    folder = out / "shapes"
    folder.mkdir(exist_ok=True)
    st, col = make_shapes_collection(folder, model)
    try:
        counts = {"text_to_image": text_to_image_right(col), "image_to_text": image_to_text_right(col),
                  "pair_to_image": pair_to_image_right(col)}
    finally:
        st.close()
    counts["caption_finds_picture"] = caption_finds_picture_hits(model)
    names, pictures = zip(*demo_pictures())
    counts["own_caption_first"] = own_caption_first(model, list(pictures))
    # The search page's setup: one centred picture per caption, drawn at 96 pixels.
    page = model.embed_images([render(c, s, size=96) for c in COLORS for s in SHAPES])
    counts["page"] = int(((model.embed_texts(shape_captions()) @ page.T).argmax(axis=1) == np.arange(12)).sum())
    # What the README's searches rank: every caption and every demo picture against the 36 demo pictures.
    images = model.embed_images(list(pictures))
    return {
        "seed": seed, "threads": threads, "train_cpu_s": round(cpu, 1), **counts, "names": list(names),
        "text_scores": (model.embed_texts([caption(c, s) for c in COLORS for s in SHAPES]) @ images.T).tolist(),
        "image_scores": (images @ images.T).tolist(),
    }


def _run(out: Path, name: str, env: dict[str, str], threads: int, seed: int) -> dict:
    folder = out / f"{name}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    result = folder / "result.json"
    if not result.is_file():
        cmd = [sys.executable, "-m", "tests.testing.spread", str(folder), "--one", str(seed), "--threads", str(threads)]
        done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{name} seed {seed} failed:\n{done.stderr[-3000:]}")
    return {"variant": name, **json.loads(result.read_text())}


def _ranked(scores: list[float], names: list[str], k: int) -> list[tuple[str, float]]:
    order = sorted(range(len(scores)), key=lambda j: -scores[j])[:k]
    return [(names[j], scores[j]) for j in order]


def summarize(runs: list[dict], k: int = 4) -> list[str]:
    lines = [f"{len(runs)} models"]
    for count in COUNTS:
        values = sorted(r[count] for r in runs)
        lines.append(f"  {count:<22} min {values[0]:>3}  values {values}")
    lines.append("  train cpu s            " + " ".join(str(r["train_cpu_s"]) for r in runs))
    seed0 = [r for r in runs if r["seed"] == 0]
    base = next((r for r in seed0 if r["variant"] == "base"), None)
    if base is None:
        return lines
    lines.append(f"seed 0 on {len(seed0)} simulated CPUs ({', '.join(r['variant'] for r in seed0)}):")
    names = base["names"]
    for kind, queries in (("text", base["text_scores"]), ("image", base["image_scores"])):
        for q in range(len(queries)):
            top = _ranked(queries[q], names, k)
            orders_agree = all([n for n, _ in _ranked(r[f"{kind}_scores"][q], names, k)] == [n for n, _ in top]
                               for r in seed0)
            moved = max(abs(r[f"{kind}_scores"][q][names.index(n)] - s) for r in seed0 for n, s in top)
            gap = min(top[i][1] - top[i + 1][1] for i in range(k - 1))
            label = names[q] if kind == "image" else f"caption {q}"
            lines.append(f"  {kind:<5} {label:<24} top-{k} order {'same' if orders_agree else 'DIFFERS'}  "
                         f"max score change {moved:.4f}  smallest gap {gap:.4f}  "
                         + "  ".join(f"{n} {s:.4f}" for n, s in top))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="Spread of the semantic tests' counts across seeds and CPUs.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 on this machine")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at once (each on one thread)")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        (args.out / "result.json").write_text(json.dumps(measure(args.out, args.one, args.threads)))
        return
    # Every seed as it trains here; seed 0 on every simulated CPU; seeds 1-5 each on one of them.
    plan = [(name, env, threads, seed) for name, env, threads in VARIANTS[:1] for seed in range(args.seeds)]
    plan += [(name, env, threads, 0) for name, env, threads in VARIANTS[1:]]
    plan += [(*VARIANTS[1 + i], 1 + i) for i in range(min(len(VARIANTS) - 1, args.seeds - 1))]
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(lambda p: _run(args.out, *p), plan))
    lines = summarize(runs)
    (args.out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
