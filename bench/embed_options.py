"""Which knobs pay: ORT session options, batch sizes and the decode pool, A/B'd in one process.

The defaults in crossmodal (runtimes/onnx.py, pipeline.py) were chosen with
this script. Variants run in interleaved short slices (every variant once per
slice, ``--slices`` times), so a noisy neighbour hits all of them alike; the
median and best rate of each are printed. Images are ViT-B/32 at the given
mode (bench/make_models.py), model-only unless the variant says ``e2e``.

Usage
  python bench/embed_options.py --mode exact            # session options and batch sizes
  python bench/embed_options.py --mode fast --study decode
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_images  # noqa: E402
from make_models import DEFAULT_OUT, make_models  # noqa: E402

CACHE = HERE.parent / ".cache" / "bench"


def session(path: Path, threads: int, **config: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    for key, value in config.items():
        opts.add_session_config_entry(key.replace("__", "."), value)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def interleave(variants: dict[str, tuple[Callable[[], Any], int]], slices: int, seconds: float) -> None:
    for fn, _ in variants.values():
        fn()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(slices):
        for name, (fn, items) in variants.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds or n == 0:
                fn()
                n += items
            rates[name].append(n / (time.perf_counter() - t0))
    for name, r in rates.items():
        print(f"  {name:44s} median {statistics.median(r):7.1f}/s  best {max(r):7.1f}/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["exact", "fast"], default="exact")
    parser.add_argument("--study", choices=["session", "batch", "decode"], default="session")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--slices", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    import crossmodal
    from crossmodal.pipeline import ImagePipeline

    dirs = make_models(DEFAULT_OUT)
    paths = make_images(CACHE / "images")[: args.images]
    model = crossmodal.load_model(dirs["onnx"], mode=args.mode, threads=args.threads, cache_dir=CACHE / "crossmodal-cache")
    pixels = np.stack([model.preprocess_image(p) for p in paths])
    graph = Path(model.encoder.vision_path)

    def model_only(run: Callable[[np.ndarray], Any], size: int) -> Callable[[], Any]:
        batches = [np.ascontiguousarray(pixels[i : i + size]) for i in range(0, len(pixels), size)]
        return lambda: [run(b) for b in batches]

    print(f"{args.mode}, {args.threads} threads, {len(paths)} images, study: {args.study}")
    variants: dict[str, tuple[Callable[[], Any], int]] = {}
    if args.study == "session":
        configs = {
            "no spinning (crossmodal)": {"session__intra_op__allow_spinning": "0"},
            "spinning (ORT default)": {"session__intra_op__allow_spinning": "1"},
            "spinning, stopped after each run": {"session__intra_op__allow_spinning": "1", "session__force_spinning_stop": "1"},
            "no spinning, dynamic blocks": {"session__intra_op__allow_spinning": "0", "session__dynamic_block_base": "4"},
            "no spinning, no prepacking": {"session__intra_op__allow_spinning": "0", "session__disable_prepacking": "1"},
        }
        for name, config in configs.items():
            s = session(graph, args.threads, **config)
            variants[name] = (model_only(lambda b, s=s: s.run(None, {"pixel_values": b}), 8), len(paths))
    elif args.study == "batch":
        for size in (1, 4, 8, 16, 32):
            variants[f"batch {size}"] = (model_only(model.encoder.encode_images, size), len(paths))
    else:
        variants["model only, batch 8"] = (model_only(model.encoder.encode_images, 8), len(paths))
        for workers in (0, 1, 2):
            variants[f"e2e, {workers} decode threads"] = (lambda w=workers: model.embed_images(paths, workers=w), len(paths))

        def processes() -> None:
            with ImagePipeline(model.spec.image, batch_size=8, workers=1, processes=True,
                               fast=args.mode == "fast") as pipeline:
                for _ in pipeline.encode(paths, model.encoder.encode_images):
                    pass

        variants["e2e, 1 decode process (incl. start-up)"] = (processes, len(paths))
    interleave(variants, args.slices, args.seconds)


if __name__ == "__main__":
    main()
