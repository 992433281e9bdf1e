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
import stat
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["UnreadableFile", "caption_ids", "change", "content_hash", "file_kind", "file_stamp", "hash_bytes", "hash_file",
           "hash_image_input", "hash_text", "make_id", "open_regular", "pair_hash", "pair_id", "pair_key"]

_CHUNK = 1 << 20


def make_id(modality: str, key: str) -> str:
    """The stable id of the ``modality`` item whose identity is ``key`` (a reference, a text): 16 hex digits.

    A key may hold surrogates: a file name's undecodable bytes arrive as surrogate escapes (``os.fsdecode``).
    """
    return hashlib.sha256(f"{modality}\n{key}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def pair_id(reference: str, text: str) -> str:
    """The id of a pair added by the library or the service: its image's reference and its text."""
    return make_id("pair", f"{reference}\n{text}")


def caption_ids(reference: str, position: int) -> tuple[str, str]:
    """The ids of the caption (text) item and the pair item an indexed image gets for its caption at
    ``position``: a caption is identified by its place in the captions file, so a new wording updates it."""
    return make_id("text", f"{reference}#caption{position}"), make_id("pair", f"{reference}#{position}")


def pair_key(text: str, image_weight: float | None) -> str:
    """What a pair's content hash covers besides its image: the text, and the fusion weight when one is given
    (as a float, so 1 and 1.0 are the same weight)."""
    return text if image_weight is None else f"{text}\nw={float(image_weight)}"


def pair_hash(image_hash: str, key: str) -> str:
    """The content hash of a pair: its image's content hash and its :func:`pair_key`."""
    return hash_text(image_hash + "\n" + key)


def content_hash(modality: str, *, text: str = "", image_hash: str = "") -> str:
    """The content hash of an item: a text's of its text, an image's is its image's (``image_hash``), a pair's
    covers both (``text`` being its :func:`pair_key`)."""
    if modality == "text":
        return hash_text(text)
    if modality == "image":
        return image_hash
    return pair_hash(image_hash, text)


def change(old: Any, new: Any) -> str:
    """What writing record ``new`` over the stored record ``old`` (None: not stored) takes:

    * ``"embed"``: it is new, or its content (modality, content hash) differs: embed it;
    * ``"unchanged"``: same content, reference, text and metadata: nothing to embed;
    * ``"refresh"``: same content, new reference, text or metadata: store them with the stored vector.
    """
    if old is None or (old.modality, old.content_hash) != (new.modality, new.content_hash):
        return "embed"
    if (dict(old.metadata), old.reference, old.text) == (dict(new.metadata), new.reference, new.text):
        return "unchanged"
    return "refresh"


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hash_text(text: str) -> str:
    return hash_bytes(text.encode("utf-8", "surrogatepass"))


class UnreadableFile(OSError):
    """A file that is not read: not a regular file, or larger than the limit (the message says which)."""

    def __str__(self) -> str:
        return str(self.args[0])


def file_kind(mode: int) -> str:
    """What a stat mode describes, in words ("a FIFO", "a character device", ...)."""
    for test, kind in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], max_size: int | None = None) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file of at most ``max_size`` bytes, else UnreadableFile.

    Opened without blocking, so a FIFO (or a link to one, or to a device) is refused rather than waited on.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(f"not a regular file ({file_kind(st.st_mode)})")
        if max_size is not None and st.st_size > max_size:
            raise UnreadableFile(f"{st.st_size:,} bytes, larger than the limit of {max_size:,} bytes")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def hash_file(path: str | os.PathLike[str], max_size: int | None = None) -> str:
    """The content hash of a regular file (:class:`UnreadableFile` for anything else, see :func:`open_regular`)."""
    digest = hashlib.sha256()
    with open_regular(path, max_size) as fh:
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
