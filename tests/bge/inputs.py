"""The inputs every BGE test feeds to both crossmodal and the reference, and synthesized test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..conftest import IMAGES

TEXTS = [
    "a photo of a cat",
    "Two dogs running in the snow.",
    "一只猫坐在椅子上。",
    "埃菲尔铁塔 at night, 夜晚",
    "the cat and the cat and the cat",
    "x",
    "Search for images and texts with one model: vector search puts texts and images in the same space, "
    "and 向量检索把文本和图像放在同一个空间里。",
]
#: photos of several modes and sizes (RGB JPEG, palette GIF, grayscale PGM, 1-bit PBM), no EXIF rotation; every
#: shared photo and more modes go through the preprocessing parity test (test_images.py)
PHOTOS = [
    IMAGES / "st-image-search" / "two_dogs_in_snow.jpg",
    IMAGES / "formats" / "chess-queen.gif",
    IMAGES / "formats" / "parrot-and-flowers.pgm",
    IMAGES / "formats" / "magpie.pbm",
]
PAIR_TEXTS = ["two dogs in the snow", "一条龙", "what is in this picture?", "a black and white bird"]
#: 314 one-token words: [CLS] + 314 + [SEP] = 316 tokens, the most a base-en pair can hold (512 - 196 image tokens)
LONGEST_PAIR_TEXT = " ".join(["cat"] * 314)
TOO_LONG_PAIR_TEXT = " ".join(["cat"] * 315)

M3_TEXTS = [*TEXTS, "the the the cat the", "Paris is the capital of France. " * 12]
M3_PAIRS = [
    ("what is the capital of France?", "Paris is the capital of France."),
    ("a photo of a cat", "A black cat sleeping on a chair."),
    ("一只猫", "两只狗在雪地里奔跑。"),
    ("x", "The quick brown fox jumps over the lazy dog, and the dog sleeps in the sun all day long."),
]
M3_MAX_LENGTH = 128  # the tiny M3's position limit (130 positions)
M3_SHORT = 24  # a max_length that cuts the long texts
M3_TRUNCATE_DIM = 16
M3_WEIGHTS = [0.4, 0.2, 0.4]


def _rgba(size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, size=(size[1], size[0], 4), dtype=np.uint8)
    arr[: size[1] // 3, :, 3] = 0  # a fully transparent band, its hidden colours random
    arr[size[1] // 3 : size[1] // 2, :, 3] = 128
    return Image.fromarray(arr, mode="RGBA")


def _gradient(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    return np.stack([x, y, (x + y) / 2], axis=-1)


def write_synthetic_images(folder: Path) -> list[Path]:
    """RGBA, palette (with and without transparency), grayscale, LA, CMYK, 16-bit, odd sizes, an EXIF rotation.

    The odd sizes are those where the crop offset's rounding matters: after
    the short side becomes 224 the long side exceeds it by 3 (mod 4), where
    round-half-even and floor differ by one pixel.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray((_gradient((301, 227)) * 255).astype(np.uint8), mode="RGB")
    noise = Image.fromarray(np.random.default_rng(2).integers(0, 256, (231, 224, 3), dtype=np.uint8), mode="RGB")
    images: dict[str, Image.Image] = {
        "rgba.png": _rgba((320, 240)),
        "palette.png": rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
        "gray.png": rgb.convert("L"),
        "gray_alpha.png": _rgba((240, 320)).convert("LA"),
        "odd_227x224.png": noise.resize((227, 224)),
        "odd_224x231.png": noise,
        "odd_683x456.png": rgb.resize((683, 456)),  # 224 / 456 * 683 = 335.5 -> 335: 111 over 224
        "thin_7x300.png": rgb.resize((7, 300)),
    }
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.info["transparency"] = 0
    paths = []
    for name, img in images.items():
        img.save(folder / name)
        paths.append(folder / name)
    pal.save(folder / "palette_transparent.png", transparency=0)
    rgb.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    rgb.convert("CMYK").save(folder / "cmyk.tiff")
    wide = (_gradient((260, 300))[..., 0] * 65535).astype(np.uint16)
    Image.fromarray(wide).save(folder / "gray16.png")
    small16 = (_gradient((260, 300))[..., 1] * 250).astype(np.uint16)  # 16-bit storage, 8-bit values
    Image.fromarray(small16).save(folder / "gray16_small_values.png")
    paths += [folder / n for n in ("palette_transparent.png", "cmyk.jpg", "cmyk.tiff", "gray16.png",
                                   "gray16_small_values.png")]
    paths.append(write_rotated_jpeg(folder / "rotated_exif6.jpg"))
    return paths


def write_rotated_jpeg(path: Path) -> Path:
    """A JPEG whose EXIF orientation (6) turns it 90 degrees."""
    img = Image.fromarray((_gradient((320, 200)) * 255).astype(np.uint8), mode="RGB")
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(path, exif=exif.tobytes(), quality=95)
    return path
