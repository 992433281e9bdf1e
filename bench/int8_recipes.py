"""Fidelity and speed of each int8 recipe of ``mode="fast"`` on this CPU.

For each model: the worst per-item cosine to ``exact`` (images, captions),
the top-10 overlaps (what ``crossmodal models verify`` checks) and, with
``--speed``, images and captions per CPU-second on one thread (ONNX Runtime
sessions on the quantized graphs; images batch 8, captions batch 64 of 12
tokens), next to fp32. Models: the three tiny test models (seeded random
weights), plus any ONNX model directory given with ``--model`` (e.g. the
full-size ViT-B/32 that ``bench/make_models.py`` builds).

Usage
  python bench/int8_recipes.py                                  # tiny models, fidelity only
  python bench/int8_recipes.py --model .cache/bench/models/clip-vit-base-patch32-onnx --speed
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import crossmodal  # noqa: E402
from crossmodal.fidelity import compare_modes  # noqa: E402
from crossmodal.runtimes import quantize  # noqa: E402
from crossmodal.runtimes.quantize import RECIPES, Int8Recipe  # noqa: E402

IMAGES = ROOT.parent / "shared" / "data" / "images"
VARIANTS = [*RECIPES.values(), Int8Recipe("u8u8-per-tensor", signed_weights=False, reduce_range=False, per_channel=False),
            Int8Recipe("u8s8-7bit-per-tensor", signed_weights=True, reduce_range=True, per_channel=False)]


def corpus() -> tuple[list[Path], list[str]]:
    images = sorted(p for p in IMAGES.rglob("*") if p.is_file() and p.suffix.lower() not in (".tsv", ".md"))
    rows = (IMAGES / "captioned" / "captions.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return images, [row.split("\t")[1] for row in rows] + ["一条龙", "x", "a dog " * 30]


def tiny_models(work: Path) -> dict[str, Path]:
    from crossmodal.families import export_onnx
    from crossmodal.testing.models import build_model, find_clip_bpe

    bpe = find_clip_bpe(search=[ROOT / ".cache" / "test-assets"])
    out = {}
    for family in ("clip", "siglip", "chinese_clip"):
        src = build_model(work / f"tiny-{family}", family=family, size="tiny", seed=0, bpe=bpe if family == "clip" else None)
        export_onnx(src, work / f"tiny-{family}-onnx")
        out[f"tiny {family}"] = work / f"tiny-{family}-onnx"
    return out


def fidelity(root: Path, recipe: Int8Recipe, cache: Path, images: list[Path], texts: list[str]) -> dict[str, float]:
    exact = crossmodal.load_model(root, cache_dir=cache)
    real = quantize.choose_recipe
    quantize.choose_recipe = lambda *a, **k: recipe
    try:
        fast = crossmodal.load_model(root, mode="fast", cache_dir=cache)
    finally:
        quantize.choose_recipe = real
    report = compare_modes(exact, fast, images, texts)
    return {"img_min": report.image_cosine_min, "txt_min": report.text_cosine_min,
            "t2i": report.text_to_image_overlap, "i2i": report.image_to_image_overlap, "passed": report.passed}


def per_cpu_second(session, feeds: dict[str, np.ndarray], items: int, seconds: float = 6.0) -> float:
    session.run(None, feeds)  # warm up
    best = 0.0
    for _ in range(3):
        start, n = time.process_time(), 0
        while time.process_time() - start < seconds / 3:
            session.run(None, feeds)
            n += items
        best = max(best, n / (time.process_time() - start))
    return best


def speed(graph: Path, kind: str) -> float:
    import onnxruntime as ort

    from crossmodal.runtimes.onnx import session_options

    session = ort.InferenceSession(str(graph), sess_options=session_options(1), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    if kind == "vision":
        (inp,) = session.get_inputs()
        size = inp.shape[-1] if isinstance(inp.shape[-1], int) else 224
        return per_cpu_second(session, {inp.name: rng.standard_normal((8, 3, size, size)).astype(np.float32)}, 8)
    feeds = {}
    ids = rng.integers(1, 1000, size=(64, 12))
    for inp in session.get_inputs():
        feeds[inp.name] = ids if inp.name == "input_ids" else np.ones_like(ids)
    return per_cpu_second(session, feeds, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=[], help="an ONNX model directory")
    parser.add_argument("--no-tiny", action="store_true", help="skip the tiny test models")
    parser.add_argument("--speed", action="store_true", help="also measure per-core speed of --model graphs")
    parser.add_argument("--recipes", nargs="*", default=[v.name for v in VARIANTS])
    args = parser.parse_args()
    flags = quantize._host_flags() or frozenset()
    print(f"this CPU: VNNI flags {sorted(flags & quantize._VNNI) or 'none'}; fast mode picks "
          f"{quantize.choose_recipe().name}")
    images, texts = corpus()
    variants = [v for v in VARIANTS if v.name in args.recipes]
    with tempfile.TemporaryDirectory(prefix="int8-recipes-") as tmp:
        work = Path(tmp)
        models = {} if args.no_tiny else tiny_models(work)
        models.update({p.name: p for p in args.model})
        for name, root in models.items():
            for recipe in variants:
                r = fidelity(root, recipe, work / "cache", images, texts)
                print(f"{name:28s} {recipe.name:22s} image cos min {r['img_min']:.5f}  text cos min {r['txt_min']:.5f}"
                      f"  top-10 t2i {r['t2i']:.3f} i2i {r['i2i']:.3f}  {'within bounds' if r['passed'] else 'FAILS'}",
                      flush=True)
        if args.speed:
            for root in args.model:
                for kind, graph in (("vision", root / "onnx" / "vision_model.onnx"), ("text", root / "onnx" / "text_model.onnx")):
                    print(f"{root.name} {kind} fp32: {speed(graph, kind):.1f} per CPU-second", flush=True)
                    for recipe in variants:
                        q = quantize.quantize_graph(graph, work / "q" / recipe.name / kind / graph.name, recipe)
                        print(f"{root.name} {kind} {recipe.name}: {speed(q, kind):.1f} per CPU-second", flush=True)


if __name__ == "__main__":
    main()
