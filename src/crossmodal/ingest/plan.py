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

:func:`plan_files` applies these rules to every file of a run; single-machine
ingest (:mod:`.run`) and the distributed planner
(:mod:`crossmodal.distributed.plan`) both start from it, so a file holds the
same items either way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..identity import caption_ids, hash_text, make_id, pair_key
from ..manifests import Annotations, load_captions, load_metadata
from ..stores.base import Record, check_metadata
from .discover import DEFAULT_MAX_FILE_SIZE, SourceFile, read_text

__all__ = ["FilePlan", "Given", "Item", "given_for", "image_items", "plan_file", "plan_files", "stored_by_source", "text_items"]

Caption = tuple[str, dict[str, Any]]


@dataclass
class Item:
    record: Record  # no vector, content_hash maybe "" until known
    file: SourceFile
    caption: str | None = None  # for pairs: what the content hash covers besides the image (identity.pair_key)
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


def given_for(options: Any) -> Given:
    """What a run with these :class:`~crossmodal.ingest.options.IngestOptions` gives besides the files (the
    captions and metadata files read here)."""
    return Given(captions=load_captions(options.captions) if options.captions else None,
                 metadata=load_metadata(options.metadata) if options.metadata else None, prune=options.prune,
                 lines=options.lines, image_weight=options.image_weight, max_file_size=options.max_file_size)


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
    for i, given in enumerate(captions):
        if given is None:
            continue
        caption, extra = given
        cmeta = {**meta, **extra, "image": ref}
        text_id, pair_id = caption_ids(ref, i)
        items.append(Item(Record(text_id, "text", caption, text=caption, content_hash=hash_text(caption), source=ref,
                                 stamp=src.stamp, metadata=cmeta), src))
        items.append(Item(Record(pair_id, "pair", ref, text=caption, source=ref, stamp=src.stamp,
                                 metadata={**meta, **extra}), src, caption=pair_key(caption, image_weight)))
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
        text_id, pair_id = caption_ids(ref, i)
        rec = by_id.get(text_id) or by_id.get(pair_id)
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


def stored_by_source(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Stored items by the file they came from (items without a source file are left out)."""
    out: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.source:
            out[r.source].append(r)
    return out


@dataclass
class FilePlan:
    """What the files of a run should hold, from :func:`plan_files`."""

    items: list[Item] = field(default_factory=list)
    stale: dict[str, list[str]] = field(default_factory=dict)  # reference -> ids the file held and no longer makes
    moved_from: dict[str, Record] = field(default_factory=dict)  # new image item id -> the stored item it moves
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason): files that cannot be read


#: finds the stored image item a new file is a move of (None: not a move)
MovedImage = Callable[[SourceFile], Record | None]
#: finds a stored text item with this content whose file is gone (None: none)
MovedText = Callable[[str], Record | None]


def plan_files(files: Sequence[SourceFile], refs: Mapping[Any, str], given: Given,
               by_source: Mapping[str, Sequence[Record]], *, moved_image: MovedImage | None = None,
               moved_text: MovedText | None = None) -> FilePlan:
    """The items every file should hold after this run (see the module docstring), in file order.

    ``refs``: each file's reference by its path; ``by_source``: what earlier runs stored, by reference
    (:func:`stored_by_source`). ``moved_image`` / ``moved_text`` find the stored items of a file that was
    renamed or moved, which the new file takes its metadata and captions from (without them, no moves).
    """
    out = FilePlan()
    for src in files:
        ref = refs[src.path]
        stored = by_source.get(ref, [])
        origin = moved_image(src) if moved_image is not None and src.kind == "image" and not stored else None
        if origin is not None:  # a renamed or moved image: it takes its stored metadata and captions along
            stored = by_source[origin.source]
        try:
            items = plan_file(src, ref, given, stored, origin.source if origin is not None else None)
            if src.kind == "text" and not stored and items and moved_text is not None:
                # a renamed text file: its items take the stored metadata of the file it was
                found = moved_text(items[0].record.content_hash)
                if found is not None:
                    items = plan_file(src, ref, given, by_source[found.source], found.source)
        except InputError as exc:
            out.failed.append((str(src.path), str(exc)))
            continue
        if origin is not None:
            out.moved_from[items[0].record.id] = origin
        else:
            keep = {i.record.id for i in items}
            out.stale[ref] = [r.id for r in stored if r.id not in keep]
        out.items += items
    return out
