"""The files ingest takes: image and text files under the paths given, regular files only, up to a size limit.

Anything else is reported as a failure that names it, never read: a FIFO
or a link to a device would block a reader forever, a huge file would
exhaust memory, and a folder that cannot be listed would silently hide its
files. File names that are not valid UTF-8 are kept as Python keeps them
(undecodable bytes as surrogate escapes, see ``os.fsdecode``), so they open
and compare like any other.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, InputError
from ..identity import file_kind, file_stamp, open_regular

__all__ = ["DEFAULT_MAX_FILE_SIZE", "TEXT_EXTENSIONS", "SourceFile", "discover", "image_extensions", "read_text"]

TEXT_EXTENSIONS = frozenset({".txt", ".md"})
#: files larger than this are not read (512 MiB: more than any photo Pillow decodes within its pixel limit)
DEFAULT_MAX_FILE_SIZE = 512 * 2**20

Failures = list[tuple[str, str]]


def image_extensions() -> frozenset[str]:
    """Every file extension PIL can open (lowercase, with the dot)."""
    from PIL import Image

    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


@dataclass(frozen=True)
class SourceFile:
    path: Path  # absolute
    kind: str  # "image" or "text"
    stamp: str


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _too_large(size: int, limit: int) -> str:
    return f"{size:,} bytes, larger than the limit of {limit:,} bytes (raise max_file_size to index it)"


def discover(
    paths: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    failed: Failures | None = None,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
) -> list[SourceFile]:
    """Image and text files under ``paths`` (files given by name are taken as they are), sorted, without repeats.

    Hidden files and folders (names starting with '.') are skipped inside
    folders; ``include``/``exclude`` globs match a file's path relative to the
    folder given, or its name. Files that are not regular files (after
    following links) or are larger than ``max_file_size`` bytes, and folders
    that cannot be read, are added to ``failed`` as (path, reason).
    """
    images = image_extensions()
    found: dict[Path, SourceFile] = {}
    failed = [] if failed is None else failed

    def consider(path: Path, rel: str, explicit: bool) -> None:
        ext = path.suffix.lower()
        kind = "text" if ext in TEXT_EXTENSIONS else "image" if ext in images else None
        if kind is None:
            if explicit:
                failed.append((str(path), "not an image or a .txt/.md file"))
            return
        if not explicit and ((include and not _matches(rel, include)) or (exclude and _matches(rel, exclude))):
            return
        try:
            st = path.stat()
        except OSError as exc:
            failed.append((str(path), f"cannot read: {exc.strerror or exc}"))
            return
        if not stat.S_ISREG(st.st_mode):
            failed.append((str(path), f"not a regular file ({file_kind(st.st_mode)})"))
        elif st.st_size > max_file_size:
            failed.append((str(path), _too_large(st.st_size, max_file_size)))
        else:
            found.setdefault(path, SourceFile(path, kind, file_stamp(path, st)))

    def unreadable(exc: OSError) -> None:
        failed.append((str(exc.filename), f"cannot read the folder: {exc.strerror or exc}"))

    for given in paths:
        top = Path(given).expanduser().absolute()
        if not top.is_dir():
            if not os.path.lexists(top):
                raise ConfigError(f"{given}: no such file or folder")
            consider(top, top.name, explicit=True)
            continue
        for folder, dirs, files in os.walk(top, onerror=unreadable):
            base = Path(folder)
            rel_dir = base.relative_to(top).as_posix()
            keep = []
            for d in sorted(dirs):
                rel = d if rel_dir == "." else f"{rel_dir}/{d}"
                if not d.startswith(".") and not (exclude and _matches(rel, exclude)):
                    keep.append(d)
            dirs[:] = keep if recursive else []
            for name in sorted(files):
                if not name.startswith("."):
                    consider(base / name, name if rel_dir == "." else f"{rel_dir}/{name}", explicit=False)
    return sorted(found.values(), key=lambda s: str(s.path))


def read_text(path: Path, max_size: int = DEFAULT_MAX_FILE_SIZE) -> str:
    """A text file's content, or :class:`InputError` naming it (unreadable, not a regular file, not UTF-8)."""
    try:
        with open_regular(path, max_size) as fh:
            data = fh.read()
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read as UTF-8 text: {exc}", input=str(path)) from exc
