"""GPU image throughput (torch runtime) against the FLOP-bound limit: ViT-B/32 and ViT-L/14.

For each architecture (seeded random weights, transformers layout, built once
into the bench cache) and each mode, it reports images/s model-only (tensors
already on the host, batch ``--batch``) and end to end (JPEG files -> unit
vectors, decoding on CPU threads ahead of the GPU), and the fraction of
``--peak-tflops`` that the model-only rate reaches. ``exact`` runs fp32 with
TF32 off, so its bound is the fp32 peak (``--fp32-peak-tflops``); ``fast``
autocasts to bf16.

Usage (on a machine with a CUDA GPU; the defaults are an H100 SXM's dense peaks)
  python bench/embed_gpu.py --device cuda
  python bench/embed_gpu.py --device cpu --archs b32 --images 16 --batch 8    # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from inputs import make_images  # noqa: E402
from make_models import ASSETS, DEFAULT_OUT, make_models  # noqa: E402

CACHE = HERE.parent / ".cache" / "bench"
#: forward GFLOP per 224x224 image of the vision tower (2 x multiply-adds)
GFLOP = {"b32": 8.8, "l14": 162.0}


def build(arch: str, out: Path) -> Path:
    """The transformers-layout model for ``arch`` (ViT-B/32 or ViT-L/14), built once."""
    from crossmodal.testing.models import build_model, find_clip_bpe

    if arch == "b32":
        return make_models(out)["transformers"]
    root = out / f"clip-{arch}"
    if (root / "model.safetensors").is_file():
        return root
    import torch
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(  # openai/clip-vit-large-patch14
        text_config={"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
                       "num_hidden_layers": 24, "patch_size": 14, "image_size": 224},
        projection_dim=768,
    )
    torch.manual_seed(0)
    return build_model(root, family="clip", bpe=find_clip_bpe(search=[ASSETS]), model=CLIPModel(config).eval())


def measure(root: Path, mode: str, device: str, paths: list[Path], batch: int, seconds: float) -> dict[str, Any]:
    import crossmodal

    model = crossmodal.load_model(root, runtime="torch", mode=mode, device=device, batch_size=batch)
    pixels = np.stack([model.preprocess_image(p) for p in paths[:batch]])
    model.encoder.encode_images(pixels)  # warm-up (kernels, allocator)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        model.encoder.encode_images(pixels)
        n += len(pixels)
    model_only = n / (time.perf_counter() - t0)
    model.embed_images(paths[:batch])
    t0 = time.perf_counter()
    vectors = model.embed_images(paths)
    end_to_end = len(vectors) / (time.perf_counter() - t0)
    return {"model_only": model_only, "end_to_end": end_to_end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--archs", default="b32,l14")
    parser.add_argument("--images", type=int, default=2000, help="files for the end-to-end pass (the 200 photos, cycled)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="dense bf16 peak (H100 SXM: about 790)")
    parser.add_argument("--fp32-peak-tflops", type=float, default=67.0, help="fp32 peak without TF32 (H100 SXM: 67)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    photos = make_images(CACHE / "images")
    paths = [photos[i % len(photos)] for i in range(args.images)]
    results = {}
    for arch in args.archs.split(","):
        root = build(arch, DEFAULT_OUT)
        for mode in ("exact", "fast"):
            r = measure(root, mode, args.device, paths, args.batch, args.seconds)
            peak = args.fp32_peak_tflops if mode == "exact" else args.peak_tflops
            r["bound_fraction"] = r["model_only"] * GFLOP[arch] / (peak * 1000)
            results[f"{arch}/{mode}"] = r
            print(f"{arch} {mode}: {r['model_only']:.0f} images/s model-only "
                  f"({r['bound_fraction']:.0%} of {peak:.0f} TFLOP/s), {r['end_to_end']:.0f} images/s end to end", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
