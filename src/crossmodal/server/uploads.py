"""Where images sent to the service are kept, and how an item's image bytes are found again.

The store keeps references, never image bytes, so an image uploaded (or
fetched by URL) into a collection is written once to the upload folder,
content-addressed, and the item refers to it:

* an upload gets the reference ``upload://<sha256>`` (no server path in it);
* an image added by URL keeps the URL as its reference; a copy is kept as
  ``<upload dir>/url-<sha256 of the URL>`` for thumbnails;
* an image added by path keeps its path (relative to the collection's root).

:func:`item_image_bytes` reads an item's image: uploads and URL copies from
the upload folder, paths only inside the server's ``--root`` folders.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ImageDecodeError, PathNotAllowed
from .security import read_file_under_roots
from .settings import ServerSettings

__all__ = ["UPLOAD_SCHEME", "item_image_bytes", "save_upload", "save_url_copy"]

UPLOAD_SCHEME = "upload://"


def _upload_dir(settings: ServerSettings) -> Path:
    if settings.upload_dir is None:
        raise ConfigError("this server keeps no uploaded images; start it with --upload-dir DIR "
                          "(or add images by path under a --root)")
    path = Path(settings.upload_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_once(folder: Path, name: str, data: bytes) -> None:
    target = folder / name
    if target.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_upload(settings: ServerSettings, data: bytes) -> str:
    """Keep uploaded bytes; returns the item reference ``upload://<sha256>``."""
    digest = hashlib.sha256(data).hexdigest()
    _write_once(_upload_dir(settings), digest, data)
    return UPLOAD_SCHEME + digest


def save_url_copy(settings: ServerSettings, url: str, data: bytes) -> None:
    """Keep a copy of an image fetched by URL (for thumbnails), when the server has an upload folder."""
    if settings.upload_dir is not None:
        _write_once(_upload_dir(settings), "url-" + hashlib.sha256(url.encode()).hexdigest(), data)


def item_image_bytes(settings: ServerSettings, collection: Any, reference: str) -> bytes:
    """The bytes of an item's image, read only where the server may read."""
    limit = settings.limits.max_image_bytes
    if reference.startswith(UPLOAD_SCHEME) or reference.startswith(("http://", "https://")):
        if settings.upload_dir is None:
            raise ImageDecodeError("this server keeps no copies of uploaded or fetched images")
        if reference.startswith(UPLOAD_SCHEME):
            name = reference[len(UPLOAD_SCHEME):]
            if len(name) != 64 or not all(c in "0123456789abcdef" for c in name):
                raise ImageDecodeError("bad upload reference")
        else:
            name = "url-" + hashlib.sha256(reference.encode()).hexdigest()
        path = Path(settings.upload_dir) / name
        if not path.is_file():
            raise ImageDecodeError("the image of this item is not kept on this server")
        return read_file_under_roots(str(path), [Path(os.path.realpath(settings.upload_dir))], limit)
    path = collection.resolve(reference)
    if path is None:
        raise ImageDecodeError("the image of this item is not a file this server can read")
    try:
        return read_file_under_roots(str(path), settings.roots, limit)
    except PathNotAllowed as exc:
        raise PathNotAllowed("the image of this item is outside the folders this server may read; "
                             "start it with --root covering the collection's folder") from exc
