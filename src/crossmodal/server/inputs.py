"""Request inputs -> checked texts and image bytes, under the server's limits and rules.

An image in a request is one of:

* a ``data:`` URL (``data:image/png;base64,...``), or plain base64 in a ``data`` field;
* an ``http(s)`` URL, fetched only when the server allows it (see :mod:`.fetch`);
* a ``file:`` URI or a ``path``, read only inside a configured root (see :mod:`.security`);
* a multipart upload.

Each is capped in bytes, and its header is read to refuse pictures over the
pixel limit before anything decodes them; a request's pictures together are
held to a pixel budget too (:meth:`InputReader.check_request_pixels`). Full
decoding (and so the error for a truncated file) happens in the model's batch,
per item, from the bytes checked here: a file is read once, never reopened.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio
from PIL import Image, UnidentifiedImageError

from ..errors import ImageDecodeError, ImageTooLarge, InputError, LimitExceeded
from .fetch import Fetcher
from .security import read_under_roots
from .settings import ServerSettings

__all__ = ["CheckedImage", "InputReader"]


@dataclass(frozen=True)
class CheckedImage:
    """An image's bytes, within the limits, and its decoded size from the header."""

    data: bytes
    pixels: int
    path: Path | None = None  # read from a file under a root: its real path


class InputReader:
    def __init__(self, settings: ServerSettings, fetcher: Fetcher) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.fetcher = fetcher

    # -- counts and texts ----------------------------------------------------------

    def check_counts(self, *, images: int = 0, texts: int = 0) -> None:
        if images > self.limits.max_images:
            raise LimitExceeded(f"the request holds {images} images, over the limit of {self.limits.max_images} per request")
        if texts > self.limits.max_texts:
            raise LimitExceeded(f"the request holds {texts} texts, over the limit of {self.limits.max_texts} per request")

    def text(self, text: str, name: str) -> str:
        if len(text) > self.limits.max_chars:  # a request-size limit of the service, not the truncation rule
            raise LimitExceeded(f"{name}: the text has {len(text):,} characters, over this server's limit of "
                                f"{self.limits.max_chars:,} per text (--max-chars)")
        return text

    # -- images ---------------------------------------------------------------------

    async def image_url(self, url: str, name: str) -> CheckedImage:
        """The image a ``data:``, ``http(s):`` or ``file:`` URL names."""
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return self.checked(self._data_url(url, name), name)
        if scheme in ("http", "https"):
            return self.checked(await self.fetcher.fetch(url), name)
        if scheme == "file":
            return await self.image_path(url, name)
        raise InputError(f"{name}: image URL must be a data:, http(s): or file: URL (got {url[:40]!r})", input=name)

    async def image_path(self, path: str, name: str) -> CheckedImage:
        read = await anyio.to_thread.run_sync(read_under_roots, path, self.settings.roots, self.limits.max_image_bytes)
        return self.checked(read.data, name, read.path)

    def image_base64(self, data: str, name: str) -> CheckedImage:
        return self.checked(self._b64(data, name), name)

    def checked(self, data: bytes, name: str, path: Path | None = None) -> CheckedImage:
        """``data`` if it is an image within the byte and pixel limits (header only; no full decode)."""
        if len(data) > self.limits.max_image_bytes:
            raise LimitExceeded(f"{name}: the image has {len(data):,} bytes, over the limit of "
                                f"{self.limits.max_image_bytes:,} per image")
        if not data:
            raise ImageDecodeError(f"{name}: the image is empty", input=name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as img:
                    width, height = img.size
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"{name}: the image is too large to decode safely ({exc})", input=name) from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise ImageDecodeError(f"{name}: not an image any installed decoder can read", input=name) from exc
        if width * height > self.limits.max_pixels:
            raise ImageTooLarge(f"{name}: the image has {width}x{height} = {width * height:,} pixels, over the limit "
                                f"of {self.limits.max_pixels:,} per image", input=name)
        return CheckedImage(data, width * height, path)

    def check_request_pixels(self, images: Iterable[CheckedImage]) -> None:
        """Refuse a request whose images hold more pixels, together, than the per-request budget."""
        total = sum(image.pixels for image in images)
        if total > self.limits.max_request_pixels:
            raise LimitExceeded(f"the request's images hold {total:,} pixels in all, over the limit of "
                                f"{self.limits.max_request_pixels:,} per request; send them in several requests")

    def _data_url(self, url: str, name: str) -> bytes:
        header, comma, payload = url.partition(",")
        if not comma or not header.lower().endswith(";base64"):
            raise InputError(f"{name}: a data URL must look like data:image/png;base64,<base64>", input=name)
        return self._b64(payload, name)

    def _b64(self, payload: str, name: str) -> bytes:
        payload = "".join(payload.split())
        if len(payload) * 3 // 4 > self.limits.max_image_bytes + 3:
            raise LimitExceeded(f"{name}: the image has about {len(payload) * 3 // 4:,} bytes, over the limit of "
                                f"{self.limits.max_image_bytes:,} per image")
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageDecodeError(f"{name}: the image is not valid base64", input=name) from exc
