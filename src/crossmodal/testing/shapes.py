"""Generated captioned pictures ("a red circle") for semantic tests.

A tiny CLIP trained on these for a few seconds learns to match captions to
pictures far above chance, which proves that the text and image paths meet in
one space end to end.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["COLORS", "SHAPES", "caption", "caption_corpus", "render", "samples"]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 210, 20),
}
SHAPES = ("circle", "square", "triangle")


def caption(color: str, shape: str) -> str:
    return f"a {color} {shape}"


def render(color: str, shape: str, *, size: int = 64, rng: np.random.Generator | None = None) -> Image.Image:
    """A ``color`` ``shape`` on a white background, with a random position and scale when ``rng`` is given."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    if rng is None:
        r, cx, cy = size * 0.3, size / 2, size / 2
    else:
        r = size * rng.uniform(0.2, 0.35)
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    fill = COLORS[color]
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return img


def samples(n: int, *, seed: int = 0, size: int = 64) -> list[tuple[Image.Image, str]]:
    """``n`` random (picture, caption) pairs."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        color = list(COLORS)[rng.integers(len(COLORS))]
        shape = SHAPES[rng.integers(len(SHAPES))]
        out.append((render(color, shape, size=size, rng=rng), caption(color, shape)))
    return out


def caption_corpus() -> Iterator[str]:
    """Text to train a small SentencePiece vocabulary on."""
    for color in COLORS:
        for shape in SHAPES:
            yield caption(color, shape)
            yield f"A photo of a {color} {shape}, drawn on white!"
    words = (
        "the quick brown fox jumps over lazy dog photo cat two dogs in snow eiffel tower at night boats on "
        "lake cake with candles camera lens bee books chess queen knight pawn parrot flowers magpie duck tree "
        "kitty sleeping chair rocket astronaut coffee horse motorcycle page black white small large picture "
        "of and near under above beside running sitting sunny beach dawn dusk city street mountain river"
    ).split()
    rng = np.random.default_rng(0)
    for _ in range(400):
        yield " ".join(rng.choice(words, size=int(rng.integers(3, 12))))
    yield "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"-()"
