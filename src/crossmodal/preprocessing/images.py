"""Images -> model input tensors, with numpy and PIL only (no torch).

Two steps, kept apart so that decoding can run in worker processes:

1. :func:`load_image` turns a path, bytes, a PIL image or a uint8 array into
   an RGB PIL image: decompression-bomb guard, full decode (so corrupt and
   truncated files fail here, naming the input), first frame of animations,
   EXIF orientation, then RGB (alpha composited on white like the reference
   processors; 16-bit and 32-bit integer images scaled, not clipped). With
   ``convert=False`` the image stays in its own mode after the orientation and
   scaling, for models that convert to RGB after resizing.
2. :class:`ImageTransform` applies one model's resize, crop, rescale and
   normalize exactly as its reference does (a Hugging Face PIL image processor,
   or torchvision's transforms, per the spec's ``crop_rounding`` and ``rgb``):
   the same PIL resample call, the same integer arithmetic for sizes and crop
   offsets, and a per-channel lookup table that reproduces the reference's
   float64 rescale and float32 normalize bit for bit.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..errors import ImageDecodeError, ImageTooLarge, InputError
from ..models.spec import ImagePreprocess

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageInput",
    "ImageTransform",
    "crop_offsets",
    "describe_input",
    "load_image",
    "orient",
    "to_rgb",
]

#: EXIF orientations that exif_transpose turns (1 and missing values leave the image as it is)
_EXIF_TRANSPOSED = frozenset(range(2, 9))

#: Pillow's own hard limit (twice ``Image.MAX_IMAGE_PIXELS``): about 179M pixels
DEFAULT_MAX_PIXELS = 2 * 89_478_485

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def describe_input(item: Any) -> str:
    """A short human name for an input, for error messages and skip reports."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"<{len(item)} bytes>"
    if isinstance(item, Image.Image):
        name = getattr(item, "filename", "") or ""
        return name or f"<PIL {item.mode} {item.width}x{item.height}>"
    if isinstance(item, np.ndarray):
        return f"<array {item.dtype} {'x'.join(map(str, item.shape))}>"
    return f"<{type(item).__name__}>"


def _open(item: Any, name: str) -> Image.Image:
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.exists():
            raise ImageDecodeError(f"image file not found: {name}", input=name)
        if not path.is_file():
            raise ImageDecodeError(f"not a file: {name}", input=name)
        source: Any = path
    elif isinstance(item, (bytes, bytearray, memoryview)):
        if len(item) == 0:
            raise ImageDecodeError("empty image bytes", input=name)
        source = io.BytesIO(bytes(item))
    else:
        raise InputError(
            f"unsupported image input {name}: pass a path, bytes, a PIL image or a uint8 HxWxC array", input=name
        )
    try:
        return Image.open(source)
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fires while reading the header, before ours can; its limit is process-wide
        # (PIL.Image.MAX_IMAGE_PIXELS), so a max_pixels above it also needs that raised.
        raise ImageTooLarge(f"{name} is too large to decode safely (a decompression-bomb guard): {exc}", input=name) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"{name} is not an image any installed decoder can read", input=name) from exc
    except OSError as exc:
        raise ImageDecodeError(f"cannot open image {name}: {exc}", input=name) from exc


def _from_array(arr: np.ndarray, name: str) -> Image.Image:
    if arr.dtype != np.uint8:
        raise InputError(f"image array {name} must be uint8 (H, W[, C]); got {arr.dtype}", input=name)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(arr, mode="L")
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(arr), mode="RGB" if arr.shape[2] == 3 else "RGBA")
    raise InputError(f"image array {name} must be H x W, H x W x 3 or H x W x 4 (channels last)", input=name)


def _scale_wide(img: Image.Image) -> Image.Image:
    """16/32-bit integer and float grayscale -> 8-bit L, preserving the dynamic range.

    Pillow's own ``convert('RGB')`` clips such images at 255, which turns most
    16-bit photos white; the reference processors inherit that, we do not.
    """
    arr = np.asarray(img)
    if img.mode == "F":
        peak = float(np.nanmax(arr)) if arr.size else 0.0
        scaled = arr * 255.0 if peak <= 1.0 else arr
    elif img.mode.startswith("I;16") or float(arr.max(initial=0)) > 255:
        scaled = arr.astype(np.float64) / 257.0
    else:
        scaled = arr
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def orient(img: Image.Image) -> Image.Image:
    """EXIF orientation applied, and 16/32-bit images scaled to 8-bit; otherwise the image's own mode."""
    # exif_transpose copies the whole image when there is nothing to turn: a quarter of a JPEG's decode time.
    if img.getexif().get(ExifTags.Base.Orientation, 1) in _EXIF_TRANSPOSED:
        img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _scale_wide(img)
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """EXIF orientation first, then RGB; transparency is composited on white."""
    img = orient(img)
    if img.mode == "RGB":
        return img
    has_alpha = "A" in img.getbands() or img.info.get("transparency") is not None
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(item: ImageInput, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, draft: tuple[int, int] | None = None,
               convert: bool = True) -> Image.Image:
    """Decode ``item`` fully into an RGB image, or raise an :class:`InputError` naming it.

    ``draft`` lets JPEG decoding downscale in the DCT domain to no smaller than
    that (width, height); only the fast mode uses it, since it changes pixels.
    ``convert=False`` leaves the oriented image in its own mode (see :func:`orient`).
    """
    name = describe_input(item)
    if isinstance(item, np.ndarray):
        img = _from_array(item, name)
    elif isinstance(item, Image.Image):
        img = item
    else:
        img = _open(item, name)
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageDecodeError(f"{name} has no pixels ({width}x{height})", input=name)
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLarge(
            f"{name} is too large to decode safely: {width}x{height} = {width * height:,} pixels, over the limit "
            f"of {max_pixels:,} (a decompression-bomb guard); raise max_pixels if you trust this file",
            input=name,
        )
    try:
        if draft is not None and img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
            img.draft(img.mode, draft)
        img.load()
        return to_rgb(img) if convert else orient(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{name}: {exc}", input=name) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"cannot decode image {name}: {exc}", input=name) from exc


def _resize_shape(height: int, width: int, cfg: ImagePreprocess) -> tuple[int, int]:
    """Target (height, width), with the reference's integer arithmetic."""
    if cfg.resize == "squash":
        return cfg.size
    edge = cfg.size[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = edge, int(edge * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def crop_offsets(height: int, width: int, crop: tuple[int, int], rounding: str = "floor") -> tuple[int, int]:
    """(top, left) of a centered ``crop`` = (height, width) of an image at least that large."""
    ch, cw = crop
    if rounding == "half_even":
        return int(round((height - ch) / 2.0)), int(round((width - cw) / 2.0))
    return (height - ch) // 2, (width - cw) // 2


def _center_crop(arr: np.ndarray, crop: tuple[int, int], rounding: str = "floor") -> np.ndarray:
    """Center crop of an H x W x C array, zero-padded first when it is smaller (as the reference)."""
    height, width = arr.shape[:2]
    ch, cw = crop
    top, left = (height - ch) // 2, (width - cw) // 2
    if top >= 0 and left >= 0:
        top, left = crop_offsets(height, width, crop, rounding)
        return arr[top : top + ch, left : left + cw]
    new_h, new_w = max(ch, height), max(cw, width)
    padded = np.zeros((new_h, new_w) + arr.shape[2:], dtype=arr.dtype)
    top_pad, left_pad = -(-(new_h - height) // 2), -(-(new_w - width) // 2)
    padded[top_pad : top_pad + height, left_pad : left_pad + width] = arr
    top, left = top + top_pad, left + left_pad
    return padded[max(0, top) : min(new_h, top + ch), max(0, left) : min(new_w, left + cw)]


class ImageTransform:
    """One model's image preprocessing: RGB PIL image -> float32 (3, H, W)."""

    def __init__(self, cfg: ImagePreprocess) -> None:
        self.cfg = cfg
        self.resample = _RESAMPLE[cfg.interpolation]
        self.output_size = cfg.output_size
        self._lut = self._build_lut(cfg)

    @staticmethod
    def _build_lut(cfg: ImagePreprocess) -> np.ndarray:
        """lut[c, v]: the reference's value for byte v in channel c, computed with its dtypes and op order."""
        values = np.arange(256)
        x = (values.astype(np.float64) * cfg.rescale).astype(np.float32) if cfg.rescale is not None else values.astype(np.float32)
        if cfg.mean is None or cfg.std is None:
            return np.stack([x, x, x])
        mean = np.asarray(cfg.mean, dtype=np.float32)
        std = np.asarray(cfg.std, dtype=np.float32)
        return np.stack([(x - mean[c]) / std[c] for c in range(3)]).astype(np.float32)

    def load(self, item: ImageInput, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
             draft: tuple[int, int] | None = None) -> Image.Image:
        """Decode ``item`` for this transform: RGB, or its own mode when the model converts after resizing."""
        return load_image(item, max_pixels=max_pixels, draft=draft, convert=self.cfg.rgb == "before_resize")

    def to_rgb(self, img: Image.Image, *, resized: bool) -> Image.Image:
        """``img`` in RGB at the stage the spec converts it (``resized``: after the resize)."""
        if img.mode == "RGB" or resized != (self.cfg.rgb == "after_resize"):
            return img
        # After the resize, as torchvision's convert('RGB'): alpha is dropped, not composited.
        return img.convert("RGB") if resized else to_rgb(img)

    def resize(self, img: Image.Image) -> np.ndarray:
        """Resize (and crop) to the model's input size; uint8 H x W x 3."""
        img = self.to_rgb(img, resized=False)
        height, width = _resize_shape(img.height, img.width, self.cfg)
        resized = self.to_rgb(img.resize((width, height), resample=self.resample), resized=True)
        arr = np.asarray(resized)
        if self.cfg.crop is not None:
            arr = _center_crop(arr, self.cfg.crop, self.cfg.crop_rounding)
        return arr

    def normalize(self, arr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """uint8 H x W x 3 -> float32 3 x H x W through the lookup table."""
        if out is None:
            out = np.empty((3, arr.shape[0], arr.shape[1]), dtype=np.float32)
        for c in range(3):
            np.take(self._lut[c], arr[:, :, c], out=out[c])
        return out

    def __call__(self, img: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
        return self.normalize(self.resize(img), out=out)

    def batch(self, images: Sequence[Image.Image]) -> np.ndarray:
        h, w = self.output_size
        out = np.empty((len(images), 3, h, w), dtype=np.float32)
        for i, img in enumerate(images):
            self(img, out=out[i])
        return out
