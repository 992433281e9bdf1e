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
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import CrossmodalError
from .shapes import COLORS, SHAPES, caption, render

__all__ = ["DEMO_PICTURE_SIZE", "demo_pictures", "main", "make_demo"]

DEMO_PICTURE_SIZE = 128


def make_demo(
    out: str | Path,
    *,
    per_caption: int = 3,
    seed: int = 0,
    bpe: bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write ``out/model`` (ONNX layout) and ``out/pictures`` (``per_caption`` PNGs per caption).

    ``progress(step, steps)`` follows the training.
    """
    from .train import import_torch, train_tiny_clip

    import_torch()
    from ..families import export_onnx

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trained = train_tiny_clip(out / "model-transformers", seed=seed, bpe=bpe, progress=progress)
    export_onnx(trained, out / "model", overwrite=True)
    shutil.rmtree(trained)
    pictures = out / "pictures"
    pictures.mkdir(exist_ok=True)
    for name, picture in demo_pictures(per_caption=per_caption, seed=seed):
        picture.save(pictures / name)
    return out


def demo_pictures(*, per_caption: int = 3, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """The demo's (file name, picture) pairs: ``a_red_circle_0.png``, ..., each shape at a random place and scale."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for color in COLORS:
        for shape in SHAPES:
            for i in range(per_caption):
                picture = render(color, shape, size=DEMO_PICTURE_SIZE, rng=rng)
                out.append((f"{caption(color, shape).replace(' ', '_')}_{i}.png", picture))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write model/ and pictures/ into")
    args = parser.parse_args(argv)
    try:
        from .models import find_clip_bpe
        from .train import import_torch

        import_torch()
        bpe = find_clip_bpe(os.environ, [Path.cwd() / ".cache" / "test-assets"])
        with _ProgressBar() as bar:
            out = make_demo(args.out, bpe=bpe, progress=bar.update)
    except CrossmodalError as exc:
        sys.exit(f"error: {exc}")
    print(f"model:    {out / 'model'}\npictures: {out / 'pictures'}")


class _ProgressBar:
    """A tqdm bar on stderr for the training steps."""

    def __enter__(self) -> _ProgressBar:
        self._bar = None
        return self

    def update(self, step: int, steps: int) -> None:
        bar = self._bar
        if bar is None:
            from tqdm import tqdm

            bar = self._bar = tqdm(total=steps, desc="training the tiny CLIP", unit="step", file=sys.stderr, leave=True)
        bar.update(step - bar.n)
        if step >= steps:
            bar.close()  # the training is done; exporting the model takes a few more seconds

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


if __name__ == "__main__":
    main()
