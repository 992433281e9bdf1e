"""Visualized-BGE and BGE-M3 throughput: crossmodal (torch, ONNX) against BAAI's reference code.

Same weights, same inputs, same run, the same number of CPU threads for everyone:

* Visualized-BGE base-en-v1.5 in the released layout with the released widths (768) and cut depth
  (EVA02 2 blocks + BERT 2 layers, seeded random weights: crossmodal.testing.bge), so a pass costs
  about a sixth of the released model's; JPEGs of about 500x375 (bench/inputs.py) and short captions.
  Images/s, texts/s and pairs/s: crossmodal ``embed_images`` / ``embed_texts`` / ``embed_pairs`` (files ->
  unit vectors) against ``Visualized_BGE.encode`` in eval mode, one image or pair per call as its API
  takes (texts: one ``encode(text=[...])`` call).
* BGE-M3 with the released widths (1024, XLM-R) and 4 layers: texts/s for the dense output alone and
  for all three (dense, sparse, ColBERT), crossmodal ``encode`` against ``BGEM3FlagModel.encode``
  (FlagEmbedding 1.4.2, its default batch of 256), and, for dense, sentence-transformers
  (Transformer + CLS pooling + Normalize, the layout of the BAAI/bge-m3 repo) when its package can be
  imported (``--sentence-transformers DIR`` puts an unpacked wheel on its process's path).

The reference runs as the tests run it (tests/reference: the unmodified FlagEmbedding code in its own
process). crossmodal's "fast" mode (int8) is not built for these families yet, so it is not measured.

Usage
  python bench/bge.py                                   # 24 images/pairs, 256 texts
  python bench/bge.py --images 8 --texts 64             # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

_ST_SCRIPT = """
import json, sys, time
import torch
from sentence_transformers import SentenceTransformer, models
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
word = models.Transformer(args["model"])
model = SentenceTransformer(modules=[word, models.Pooling(word.get_word_embedding_dimension(), pooling_mode="cls"),
                                     models.Normalize()], device="cpu")
texts = args["texts"]
model.encode(texts[:8], batch_size=args["batch"])
t = time.perf_counter()
model.encode(texts, batch_size=args["batch"])
print(json.dumps({"seconds": time.perf_counter() - t}))
"""


def _timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def build(work: Path) -> dict[str, Path]:
    from crossmodal.bge.m3 import load_m3
    from crossmodal.bge.onnx_export import export_m3, export_visualized
    from crossmodal.bge.visualized import load_visualized
    from crossmodal.testing.bge import build_m3, build_visualized

    dirs = {"vis": work / "visualized", "m3": work / "m3", "vis_onnx": work / "visualized-onnx", "m3_onnx": work / "m3-onnx"}
    if not (dirs["vis"] / "config.json").is_file():
        build_visualized(dirs["vis"], variant="base-en", seed=0)
    if not (dirs["m3"] / "config.json").is_file():
        build_m3(dirs["m3"], size="bench", seed=0)
    if not (dirs["vis_onnx"] / "bge.json").is_file():
        export_visualized(load_visualized(dirs["vis"]), dirs["vis"], dirs["vis_onnx"])
    if not (dirs["m3_onnx"] / "bge.json").is_file():
        export_m3(load_m3(dirs["m3"]), dirs["m3"], dirs["m3_onnx"])
    return dirs


def crossmodal_rates(dirs: dict[str, Path], images: list[str], texts: list[str], m3_texts: list[str],
                     threads: int) -> dict[str, dict[str, float]]:
    import torch

    from crossmodal.bge.onnx_run import load_m3_onnx, load_visualized_onnx
    from crossmodal.bge.torch_graphs import load_m3_encoder, load_visualized_encoder

    torch.set_num_threads(threads)
    out: dict[str, dict[str, float]] = {}
    pair_texts = texts[: len(images)]
    for runtime, vis, m3 in (
        ("torch", load_visualized_encoder(dirs["vis"]), load_m3_encoder(dirs["m3"])),
        ("onnx", load_visualized_onnx(dirs["vis_onnx"], threads=threads), load_m3_onnx(dirs["m3_onnx"], threads=threads)),
    ):
        vis.embed_pairs(images[:2], pair_texts[:2])  # warm-up
        vis.embed_texts(texts[:8])
        m3.encode(m3_texts[:8], sparse=True, colbert=True)
        out[f"crossmodal-{runtime}"] = {
            "images/s": len(images) / _timed(vis.embed_images, images),
            "texts/s": len(texts) / _timed(vis.embed_texts, texts),
            "pairs/s": len(images) / _timed(vis.embed_pairs, images, pair_texts),
            "m3 dense texts/s": len(m3_texts) / _timed(m3.encode, m3_texts),
            "m3 all texts/s": len(m3_texts) / _timed(m3.encode, m3_texts, sparse=True, colbert=True),
        }
    return out


def reference_rates(dirs: dict[str, Path], images: list[str], texts: list[str], m3_texts: list[str],
                    threads: int) -> dict[str, float]:
    from tests.reference.bge_reference import m3_task, run, visualized_task

    pair_texts = texts[: len(images)]
    visual_calls = [
        {"name": "warm", "op": "pair", "images": images[:2], "texts": pair_texts[:2]},
        {"name": "warm_text", "op": "text", "texts": texts[:8], "batched": True},
        {"name": "image", "op": "image", "images": images},
        {"name": "text", "op": "text", "texts": texts, "batched": True},
        {"name": "pair", "op": "pair", "images": images, "texts": pair_texts},
    ]
    m3_calls = [
        {"name": "warm", "op": "encode", "texts": m3_texts[:8], "sparse": True, "colbert": True},
        {"name": "dense", "op": "encode", "texts": m3_texts},
        {"name": "all", "op": "encode", "texts": m3_texts, "sparse": True, "colbert": True},
    ]
    (visual,) = run([visualized_task(dirs["vis"], visual_calls)], threads=threads, timeout=3600)
    (m3,) = run([m3_task(dirs["m3"], m3_calls)], threads=threads, timeout=3600)
    for result in (visual, m3):
        errors = {k: v for k, v in result.meta.items() if isinstance(v, dict) and "error" in v}
        if errors:
            raise SystemExit(f"the reference failed: {errors}")
    vs, ms = visual.meta["seconds"], m3.meta["seconds"]
    return {"images/s": len(images) / vs["image"], "texts/s": len(texts) / vs["text"],
            "pairs/s": len(images) / vs["pair"], "m3 dense texts/s": len(m3_texts) / ms["dense"],
            "m3 all texts/s": len(m3_texts) / ms["all"]}


def sentence_transformers_rate(m3_dir: Path, texts: list[str], threads: int, path: str | None) -> float | None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": path or ""}
    args = json.dumps({"model": str(m3_dir), "texts": texts, "threads": threads, "batch": 32})
    proc = subprocess.run([sys.executable, "-c", _ST_SCRIPT, args], env=env, capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        print(f"sentence-transformers not measured: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return len(texts) / json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=24, help="images, and image+text pairs (default 24)")
    parser.add_argument("--texts", type=int, default=256, help="texts for each text rate (default 256)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="where to build the models (reused when there)")
    parser.add_argument("--sentence-transformers", dest="st_path", default=None,
                        help="a directory holding the sentence_transformers package, if it is not installed")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from inputs import make_captions, make_images

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bge-"))
    dirs = build(work)
    images = [str(p) for p in make_images(work / "images", args.images)]
    texts = make_captions(args.texts)
    m3_texts = texts
    started, load = os.times(), os.getloadavg()
    rates = crossmodal_rates(dirs, images, texts, m3_texts, args.threads)
    rates["reference"] = reference_rates(dirs, images, texts, m3_texts, args.threads)
    st = sentence_transformers_rate(dirs["m3"], m3_texts, args.threads, args.st_path)
    if st is not None:
        rates["sentence-transformers"] = {"m3 dense texts/s": st}
    ended = os.times()
    keys = ["images/s", "texts/s", "pairs/s", "m3 dense texts/s", "m3 all texts/s"]
    print(f"{'contender':24}" + "".join(f"{k:>18}" for k in keys))
    for name, row in rates.items():
        print(f"{name:24}" + "".join(f"{row[k]:18.2f}" if k in row else f"{'-':>18}" for k in keys))
    ref = rates["reference"]
    for name in ("crossmodal-torch", "crossmodal-onnx"):
        print(f"{name} / reference: " + ", ".join(f"{k} {rates[name][k] / ref[k]:.2f}x" for k in keys))
        if st is not None:
            print(f"{name} / sentence-transformers: m3 dense {rates[name]['m3 dense texts/s'] / st:.2f}x")
    print(f"({ended.elapsed - started.elapsed:.0f} s wall; load average {load[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs; {args.images} images/pairs, {args.texts} texts, "
          f"{args.threads} threads)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rates": rates}, indent=1))


if __name__ == "__main__":
    main()
