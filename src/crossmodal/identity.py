"""Stable item ids, content hashes and file change stamps.

An item's id is derived from what it refers to, so adding the same file or
text twice updates one item instead of creating a duplicate, and a re-index
finds the item again. Content hashes decide whether an item must be
re-embedded; change stamps (size + mtime) let a re-index skip a file without
even reading it.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["file_stamp", "hash_bytes", "hash_file", "hash_image_input", "hash_text", "make_id"]

_CHUNK = 1 << 20


def make_id(modality: str, key: str) -> str:
    """The stable id of the ``modality`` item whose identity is ``key`` (a reference, a text): 16 hex digits."""
    return hashlib.sha256(f"{modality}\n{key}".encode()).hexdigest()[:16]


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hash_text(text: str) -> str:
    return hash_bytes(text.encode("utf-8", "surrogatepass"))


def hash_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def file_stamp(path: str | os.PathLike[str], stat: os.stat_result | None = None) -> str:
    """``size:mtime_ns``: changes whenever the file is written (or touched)."""
    st = stat or os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def hash_image_input(image: Any) -> str:
    """The content hash of any image input (file, bytes, PIL image, uint8 array)."""
    if isinstance(image, (str, os.PathLike)):
        return hash_file(Path(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return hash_bytes(image)
    if isinstance(image, np.ndarray):
        head = f"{image.dtype}:{image.shape}:".encode()
        return hash_bytes(head + np.ascontiguousarray(image).tobytes())
    from PIL import Image

    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        buf.write(f"{image.mode}:{image.size}:".encode())
        buf.write(image.tobytes())
        return hash_bytes(buf.getvalue())
    return hash_text(repr(image))
