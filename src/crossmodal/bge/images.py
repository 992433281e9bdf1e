"""Images -> Visualized-BGE's pixel tensors, with numpy and PIL only (no torch).

The reference (EVA-CLIP's eval transform) is ``Resize(224, BICUBIC)`` on the
short side, ``CenterCrop(224)``, ``convert('RGB')``, ``ToTensor``, ``Normalize``
with OpenAI's mean and std. Two of its choices differ from the CLIP image
processors and are data here (:class:`ImageRule`):

* ``crop_rounding``: torchvision offsets the crop by ``int(round((d - c) / 2))``,
  Python's round half to even (``"half_even"``), where the CLIP processors floor
  (``"floor"``); they differ by one pixel when ``d - c`` is 3 mod 4;
* ``rgb``: the reference converts to RGB *after* resizing (``"after_resize"``), so
  Pillow resizes in the image's own mode: palette (and 1-bit) images with
  NEAREST whatever was asked, RGBA premultiplied (fully transparent pixels come
  out black: alpha is dropped, not composited).

The long side is ``int(size * long / short)`` and the resize is PIL's own call,
as torchvision does for PIL images. ``ToTensor`` + ``Normalize`` are float32
``((v / 255) - mean) / std``, reproduced bit for bit by a per-channel table.

Decoding (:func:`decode_image`) is crossmodal's, for every model: EXIF
orientation applied, and 16/32-bit images scaled to 8 bits instead of clipped
(the reference does neither: ``Image.open`` and Pillow's conversion, which turns
most 16-bit photos white). Pass ``exif=False, scale_wide=False`` for the
reference's decoding.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import ConfigError, ImageDecodeError, InputError

__all__ = ["ImageRule", "crop_offsets", "decode_image", "preprocess", "preprocess_batch", "resized_size"]

CropRounding = Literal["floor", "half_even"]
RgbStage = Literal["before_resize", "after_resize"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
             "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}
_EXIF_TURNS = frozenset(range(2, 9))


@dataclass(frozen=True)
class ImageRule:
    """One model's resize, crop, RGB conversion and normalization."""

    size: int = 224
    interpolation: str = "bicubic"
    crop_rounding: CropRounding = "half_even"
    rgb: RgbStage = "after_resize"
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size must be positive, got {self.size}")
        if self.interpolation not in _RESAMPLE:
            raise ConfigError(f"interpolation must be one of {sorted(_RESAMPLE)}, got {self.interpolation!r}")
        if self.crop_rounding not in ("floor", "half_even"):
            raise ConfigError(f"crop_rounding must be 'floor' or 'half_even', got {self.crop_rounding!r}")
        if self.rgb not in ("before_resize", "after_resize"):
            raise ConfigError(f"rgb must be 'before_resize' or 'after_resize', got {self.rgb!r}")

    def table(self) -> np.ndarray:
        """table[c, v]: the normalized float32 value of byte ``v`` in channel ``c``."""
        x = np.arange(256, dtype=np.float32) / np.float32(255)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return np.stack([(x - mean[c]) / std[c] for c in range(3)]).astype(np.float32)


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) after scaling the short side to ``size`` (the long side truncated, as torchvision)."""
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (size, new_long) if width <= height else (new_long, size)


def crop_offsets(width: int, height: int, size: int, rounding: CropRounding) -> tuple[int, int]:
    """(left, top) of a centered ``size`` crop."""
    if rounding == "floor":
        return (width - size) // 2, (height - size) // 2
    return int(round((width - size) / 2.0)), int(round((height - size) / 2.0))


def _name(item: Any) -> str:
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"<{len(item)} bytes>"
    return f"<{type(item).__name__}>"


def _scale_wide(img: Image.Image) -> Image.Image:
    arr = np.asarray(img)
    if img.mode == "F":
        scaled = arr * 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else arr
    elif img.mode.startswith("I;16") or (arr.size and float(arr.max()) > 255):
        scaled = arr.astype(np.float64) / 257.0
    else:
        scaled = arr
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def decode_image(item: Any, *, exif: bool = True, scale_wide: bool = True) -> Image.Image:
    """A fully decoded PIL image (first frame), in its own mode, or an :class:`ImageDecodeError` naming it."""
    name = _name(item)
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview)):
        if isinstance(item, (str, os.PathLike)) and not Path(item).is_file():
            raise ImageDecodeError(f"image file not found: {name}", input=name)
        source = io.BytesIO(bytes(item)) if isinstance(item, (bytes, bytearray, memoryview)) else item
        try:
            img = Image.open(source)
            img.load()
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageDecodeError(f"cannot decode image {name}: {exc}", input=name) from exc
    else:
        raise InputError(f"unsupported image input {name}: pass a path, bytes or a PIL image", input=name)
    if exif and img.getexif().get(ExifTags.Base.Orientation, 1) in _EXIF_TURNS:
        img = ImageOps.exif_transpose(img)
    if scale_wide and (img.mode in ("I", "F") or img.mode.startswith("I;16")):
        img = _scale_wide(img)
    return img


def _resize_crop(img: Image.Image, rule: ImageRule) -> Image.Image:
    width, height = resized_size(img.width, img.height, rule.size)
    if (width, height) != img.size:
        img = img.resize((width, height), _RESAMPLE[rule.interpolation])
    left, top = crop_offsets(width, height, rule.size, rule.crop_rounding)
    return img.crop((left, top, left + rule.size, top + rule.size))


def preprocess(img: Image.Image, rule: ImageRule, *, table: np.ndarray | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
    """One decoded image -> float32 (3, size, size)."""
    if rule.rgb == "before_resize":
        img = img.convert("RGB")
    img = _resize_crop(img, rule)
    if img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.asarray(img)
    lut = rule.table() if table is None else table
    if out is None:
        out = np.empty((3, rule.size, rule.size), dtype=np.float32)
    for c in range(3):
        np.take(lut[c], arr[:, :, c], out=out[c])
    return out


def preprocess_batch(images: Sequence[Image.Image], rule: ImageRule) -> np.ndarray:
    """Decoded images -> float32 (B, 3, size, size)."""
    out = np.empty((len(images), 3, rule.size, rule.size), dtype=np.float32)
    lut = rule.table()
    for i, img in enumerate(images):
        preprocess(img, rule, table=lut, out=out[i])
    return out
