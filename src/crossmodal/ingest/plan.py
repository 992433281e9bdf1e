"""What one file should hold after a run: its items, from what this run gives and what earlier runs stored.

A run adds and updates only what it is given; the rules for what a file
keeps (docs/collections.md, "What a re-index keeps and removes"):

* metadata: a metadata file with a row for the file replaces the file's
  metadata (on all its items); otherwise the stored metadata stays (with
  ``prune`` and a metadata file, a file it does not list loses its metadata);
* captions of an image: a captions file that lists the image replaces its
  caption and pair items by the new ones; otherwise they stay as they are
  (with ``prune`` and a captions file, an image it does not list loses them);
  they follow the image's content and metadata either way;
* a text file's items follow its content (one item, or one per non-empty
  line with ``lines``);
* a renamed or moved image takes its stored metadata and captions along.

Whatever a file held and no longer produces is removed once its new items
are stored, and counted; a file that cannot be read keeps what it had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..identity import hash_text, make_id
from ..manifests import Annotations
from ..stores.base import Record, check_metadata
from .discover import DEFAULT_MAX_FILE_SIZE, SourceFile, read_text

__all__ = ["Given", "Item", "plan_file"]

Caption = tuple[str, dict[str, Any]]


@dataclass
class Item:
    record: Record  # no vector, content_hash maybe "" until known
    file: SourceFile
    caption: str | None = None  # for pairs: the caption and fusion weight the content hash covers
    origin: str = ""  # the source whose stored items this one was planned from, when not its own file


@dataclass(frozen=True)
class Given:
    """What this run was given besides the files: captions and metadata files (None: not given this run)."""

    captions: Annotations | None = None
    metadata: Annotations | None = None
    prune: bool = False
    lines: bool = False
    image_weight: float | None = None
    max_file_size: int = DEFAULT_MAX_FILE_SIZE


def text_items(src: SourceFile, ref: str, lines: bool, meta: dict[str, Any],
               max_size: int = DEFAULT_MAX_FILE_SIZE) -> list[Item]:
    """The text items of a text file, or InputError (unreadable, not UTF-8, empty)."""
    content = read_text(src.path, max_size)
    if not lines:
        text = content.strip()
        if not text:
            raise InputError("empty text file", input=str(src.path))
        rec = Record(make_id("text", ref), "text", ref, text=text, content_hash=hash_text(text), source=ref,
                     stamp=src.stamp, metadata=meta)
        return [Item(rec, src)]
    out = []
    for number, line in enumerate(content.splitlines(), start=1):
        text = line.strip()
        if text:
            item_ref = f"{ref}#L{number}"
            rec = Record(make_id("text", item_ref), "text", item_ref, text=text, content_hash=hash_text(text),
                         source=ref, stamp=src.stamp, metadata={**meta, "line": number})
            out.append(Item(rec, src))
    return out


def image_items(src: SourceFile, ref: str, meta: dict[str, Any], captions: Sequence[Caption | None],
                image_weight: float | None) -> list[Item]:
    """An image item, plus a caption (text) and a pair item per caption (None: no caption at that position)."""
    items = [Item(Record(make_id("image", ref), "image", ref, source=ref, stamp=src.stamp, metadata=meta), src)]
    weight = "" if image_weight is None else f"\nw={image_weight}"
    for i, given in enumerate(captions):
        if given is None:
            continue
        caption, extra = given
        cmeta = {**meta, **extra, "image": ref}
        items.append(Item(Record(make_id("text", f"{ref}#caption{i}"), "text", caption, text=caption,
                                 content_hash=hash_text(caption), source=ref, stamp=src.stamp, metadata=cmeta), src))
        items.append(Item(Record(make_id("pair", f"{ref}#{i}"), "pair", ref, text=caption, source=ref,
                                 stamp=src.stamp, metadata={**meta, **extra}), src, caption=caption + weight))
    return items


def _stored_metadata(kind: str, ref: str, stored: Sequence[Record]) -> dict[str, Any]:
    """The file's own metadata as stored: its image item's, or its text items' (without the line number)."""
    by_id = {r.id: r for r in stored}
    own = by_id.get(make_id(kind, ref))
    if own is not None:
        return dict(own.metadata)
    if kind == "text":
        for r in sorted(stored, key=lambda r: r.reference):
            if r.modality == "text":
                return {k: v for k, v in r.metadata.items() if k != "line"}
    return {}


_MISSING = object()


def _stored_captions(ref: str, stored: Sequence[Record], base: dict[str, Any]) -> list[Caption | None]:
    """The captions stored for image ``ref``, by position, each with its own columns (what it adds to ``base``)."""
    by_id = {r.id: r for r in stored}
    out: list[Caption | None] = []
    for i in range(sum(1 for r in stored if r.modality in ("text", "pair"))):
        rec = by_id.get(make_id("text", f"{ref}#caption{i}")) or by_id.get(make_id("pair", f"{ref}#{i}"))
        if rec is None or rec.text is None:
            out.append(None)
            continue
        extra = {k: v for k, v in rec.metadata.items() if k != "image" and base.get(k, _MISSING) != v}
        out.append((rec.text, extra))
    while out and out[-1] is None:
        out.pop()
    return out


def plan_file(src: SourceFile, ref: str, given: Given, stored: Sequence[Record], origin: str | None = None) -> list[Item]:
    """The items file ``src`` (reference ``ref``) should hold after this run; InputError if it cannot be read.

    ``stored``: what earlier runs stored for the file, or for ``origin`` (the reference of the file it was moved
    from, whose stored metadata and captions it takes along).
    """
    basis = origin or ref
    base = _stored_metadata(src.kind, basis, stored)
    row = given.metadata.find(src.path, ref) if given.metadata is not None else None
    if row is not None:
        meta = check_metadata(row)
    elif given.metadata is not None and given.prune:
        meta = {}
    else:
        meta = base
    if src.kind == "text":
        return text_items(src, ref, given.lines, meta, given.max_file_size)
    rows = given.captions.lookup_all(src.path, ref) if given.captions is not None else []
    captions: list[Caption | None]
    if rows:
        captions = [(c, check_metadata(extra)) for c, extra in rows]
    elif given.captions is not None and given.prune:
        captions = []
    else:
        captions = _stored_captions(basis, stored, base)
    items = image_items(src, ref, meta, captions, given.image_weight)
    if origin is not None:
        for item in items:
            item.origin = origin
    return items
