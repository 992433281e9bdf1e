"""Build the full-size benchmark models (not committed; rebuilt on demand).

Writes, under ``--out`` (default ``.cache/bench/models`` in the checkout):

* ``clip-vit-base-patch32/``: a seeded random-init CLIP with exactly
  openai/clip-vit-base-patch32's architecture (ViT-B/32, 151M parameters), in
  the hub's transformers layout (what the torch runtime and transformers load);
* ``clip-vit-base-patch32-onnx/``: its ONNX export in the hub's ONNX layout
  (``onnx/vision_model.onnx``, ``onnx/text_model.onnx``, tokenizer and
  preprocessor files), checked against the source by ``export_onnx``;
* ``fastembed/clip-ViT-B-32-vision/`` and ``fastembed/clip-ViT-B-32-text/``:
  the same two graphs in the file layout of fastembed's
  ``Qdrant/clip-ViT-B-32-vision`` / ``-text`` entries (``model.onnx`` next to
  ``preprocessor_config.json``, or next to ``tokenizer.json``,
  ``tokenizer_config.json``, ``special_tokens_map.json`` and ``config.json``),
  loaded with ``specific_model_path``. The graphs are hard links, not copies.

Usage::

    python bench/make_models.py [--out DIR] [--force]

Needs the torch extra (transformers builds and exports the model).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / ".cache" / "bench" / "models"
ASSETS = ROOT / ".cache" / "test-assets"

TRANSFORMERS_DIR = "clip-vit-base-patch32"
ONNX_DIR = "clip-vit-base-patch32-onnx"
FASTEMBED_VISION = "fastembed/clip-ViT-B-32-vision"
FASTEMBED_TEXT = "fastembed/clip-ViT-B-32-text"

_VISION_FILES = ("preprocessor_config.json", "config.json")
_TEXT_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def fastembed_layout(onnx_dir: Path, out: Path) -> tuple[Path, Path]:
    """fastembed's ``Qdrant/clip-ViT-B-32-{vision,text}`` layouts, built from an ONNX-layout export."""
    vision, text = out / FASTEMBED_VISION, out / FASTEMBED_TEXT
    _link_or_copy(onnx_dir / "onnx" / "vision_model.onnx", vision / "model.onnx")
    _link_or_copy(onnx_dir / "onnx" / "text_model.onnx", text / "model.onnx")
    for name in _VISION_FILES:
        shutil.copy2(onnx_dir / name, vision / name)
    for name in _TEXT_FILES:
        if (onnx_dir / name).is_file():
            shutil.copy2(onnx_dir / name, text / name)
    return vision, text


def make_models(out: Path = DEFAULT_OUT, *, force: bool = False, seed: int = 0) -> dict[str, Path]:
    """Build (or reuse) the benchmark models; returns their directories by role."""
    from crossmodal.families import export_onnx
    from crossmodal.testing.models import build_model, find_clip_bpe

    out = Path(out)
    src, onnx_dir = out / TRANSFORMERS_DIR, out / ONNX_DIR
    if force:
        for path in (src, onnx_dir, out / "fastembed"):
            shutil.rmtree(path, ignore_errors=True)
    if not (src / "model.safetensors").is_file():
        t0 = time.perf_counter()
        build_model(src, family="clip", size="base", seed=seed, bpe=find_clip_bpe(search=[ASSETS]))
        print(f"built {src} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    if not (onnx_dir / "onnx" / "text_model.onnx").is_file():
        t0 = time.perf_counter()
        report = export_onnx(src, onnx_dir, overwrite=True)
        print(
            f"exported {onnx_dir} in {time.perf_counter() - t0:.0f}s "
            f"(max |diff| image {report.max_abs_diff_image:.1e}, text {report.max_abs_diff_text:.1e})",
            file=sys.stderr,
        )
    vision, text = fastembed_layout(onnx_dir, out)
    return {"transformers": src, "onnx": onnx_dir, "fastembed_vision": vision, "fastembed_text": text}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write (default {DEFAULT_OUT})")
    parser.add_argument("--force", action="store_true", help="rebuild even if the models exist")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for role, path in make_models(args.out, force=args.force, seed=args.seed).items():
        print(f"{role}: {path}")


if __name__ == "__main__":
    main()
