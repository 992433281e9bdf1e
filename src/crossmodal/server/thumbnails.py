"""Thumbnails: small JPEGs of collection images, rendered once and kept in a bounded LRU cache.

They are looked up by (collection, item id, content hash, size), never by a
path from the request, and served with an ``ETag`` and ``Cache-Control`` so
browsers keep them too.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections import OrderedDict

from PIL import Image, ImageOps

from ..errors import ImageDecodeError

__all__ = ["SIZES", "ThumbnailCache", "render_thumbnail"]

SIZES = (64, 128, 256, 512)

Key = tuple[str, str, str, int]


def render_thumbnail(data: bytes, size: int, max_pixels: int) -> bytes:
    """A JPEG no larger than ``size`` on its longer side, upright, alpha on white."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            source = Image.open(io.BytesIO(data))
            if source.width * source.height > max_pixels:
                raise ImageDecodeError("the image is over the pixel limit; no thumbnail")
            source.draft("RGB", (size, size))
            img: Image.Image = ImageOps.exif_transpose(source)
            img.thumbnail((size, size))
            if img.mode != "RGB":
                rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(white, rgba).convert("RGB")
            out = io.BytesIO()
            img.save(out, format="JPEG", quality=85)
            return out.getvalue()
    except ImageDecodeError:
        raise
    except Exception as exc:  # any decoder failure: this item has no thumbnail
        raise ImageDecodeError(f"the image cannot be decoded for a thumbnail ({type(exc).__name__})") from exc


class ThumbnailCache:
    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[Key, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: Key, data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def drop(self, collection: str, item_id: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k[0] == collection and k[1] == item_id]:
                del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
