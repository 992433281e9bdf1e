"""An offline demo: a tiny CLIP trained on generated shapes, plus a folder of such pictures.

Where the Hugging Face hub cannot be reached, this gives the quickstart a real
model to run with (``CROSSMODAL_MODEL=DIR/model``) and pictures whose search
results can be checked by eye::

    python -m crossmodal.testing.demo .cache/demo
    CROSSMODAL_MODEL=.cache/demo/model crossmodal index .cache/demo/pictures
    CROSSMODAL_MODEL=.cache/demo/model crossmodal search "a red circle"

Needs the ``torch`` extra (to train and export the model) and CLIP's BPE
vocabulary (see :func:`crossmodal.testing.models.find_clip_bpe`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from .shapes import COLORS, SHAPES, caption, render

__all__ = ["make_demo"]


def make_demo(out: str | Path, *, per_caption: int = 3, seed: int = 0, bpe: bytes | None = None) -> Path:
    """Write ``out/model`` (ONNX layout) and ``out/pictures`` (``per_caption`` PNGs per caption)."""
    from ..models.export import export_onnx
    from .train import train_tiny_clip

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trained = train_tiny_clip(out / "model-transformers", steps=1000, seed=seed, bpe=bpe, picture_size=128)
    export_onnx(trained, out / "model", overwrite=True)
    shutil.rmtree(trained)
    pictures = out / "pictures"
    pictures.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    for color in COLORS:
        for shape in SHAPES:
            for i in range(per_caption):
                render(color, shape, size=128, rng=rng).save(pictures / f"{caption(color, shape).replace(' ', '_')}_{i}.png")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write model/ and pictures/ into")
    args = parser.parse_args()
    out = make_demo(args.out)
    print(f"model:    {out / 'model'}\npictures: {out / 'pictures'}")


if __name__ == "__main__":
    main()
