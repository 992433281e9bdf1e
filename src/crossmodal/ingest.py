"""Ingest: folders of images and text files -> a collection, incrementally and crash-safely.

:func:`ingest` walks the paths, plans what changed since the last run and
embeds only that:

* a file whose size and mtime match what was recorded is skipped unread;
* a file whose stamp changed is hashed; same content: only its stamp is
  updated ("unchanged"); new content: it is embedded again ("updated");
* a new file whose content matches an item whose file has disappeared is a
  move: the stored vector is reused and the old item goes ("moved");
* with ``prune``, items whose files are gone are deleted ("removed").

Images are decoded by workers while the model runs (``Model.iter_images``:
threads by default, since Pillow and ONNX Runtime release the GIL and threads
measured as fast as processes without the start-up cost; ``processes=True``
for worker processes), and every embedded batch is one committed transaction, so a killed run loses at most the batch in flight and
the next run carries on. Bad files are reported at the end; they never stop
the run.

Each image becomes an ``image`` item whose reference is its path relative to
the collection's root. A text file (.txt, .md) becomes one ``text`` item, or
one per non-empty line with ``lines=True``. With a captions file, each
captioned image also gets a ``text`` item (the caption) and a ``pair`` item
(image + caption).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .collection import Collection
from .errors import ConfigError, InputError
from .identity import file_stamp, hash_file, hash_text, make_id
from .manifests import Annotations, load_captions, load_metadata
from .stores.base import Record, check_metadata

__all__ = ["IngestReport", "SourceFile", "discover", "image_extensions", "ingest"]

TEXT_EXTENSIONS = frozenset({".txt", ".md"})


def image_extensions() -> frozenset[str]:
    """Every file extension PIL can open (lowercase, with the dot)."""
    from PIL import Image

    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


@dataclass(frozen=True)
class SourceFile:
    path: Path  # absolute
    kind: str  # "image" or "text"
    stamp: str


@dataclass
class IngestReport:
    """What a run did, in items (a captioned image is three items: image, caption, pair)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    moved: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    files: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return self.unchanged

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "added": self.added, "updated": self.updated, "skipped": self.unchanged,
                "moved": self.moved, "removed": self.removed, "failed": len(self.failed),
                "failures": [{"file": f, "error": e} for f, e in self.failed], "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.unchanged} skipped (unchanged)"]
        if self.moved:
            parts.append(f"{self.moved} moved")
        if self.removed:
            parts.append(f"{self.removed} removed")
        parts.append(f"{len(self.failed)} failed")
        return f"{self.files} files: " + ", ".join(parts) + f" in {self.seconds:.1f} s"


# -- finding files ----------------------------------------------------------------------------------------------------


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def discover(
    paths: Iterable[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    failed: list[tuple[str, str]] | None = None,
) -> list[SourceFile]:
    """Image and text files under ``paths`` (files given by name are taken as they are), sorted, without repeats.

    Hidden files and folders (names starting with '.') are skipped inside
    folders; ``include``/``exclude`` globs match a file's path relative to the
    folder given, or its name.
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
        found.setdefault(path, SourceFile(path, kind, file_stamp(path, st)))

    for given in paths:
        top = Path(given).expanduser().absolute()
        if top.is_file():
            consider(top, top.name, explicit=True)
            continue
        if not top.is_dir():
            raise ConfigError(f"{given}: no such file or folder")
        for folder, dirs, files in os.walk(top):
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


# -- planning -------------------------------------------------------------------------------------------------------------


@dataclass
class _Item:
    record: Record  # no vector, content_hash maybe "" until known
    file: SourceFile
    caption: str | None = None  # for pairs


class _Hashes:
    """File content hashes, each computed once."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        h = self._known.get(path)
        if h is None:
            h = self._known[path] = hash_file(path)
        return h


def _text_items(col: Collection, src: SourceFile, ref: str, lines: bool, meta: dict[str, Any],
                failed: list[tuple[str, str]]) -> list[_Item]:
    try:
        content = src.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        failed.append((str(src.path), f"cannot read as UTF-8 text: {exc}"))
        return []
    if not lines:
        text = content.strip()
        if not text:
            failed.append((str(src.path), "empty text file"))
            return []
        rec = Record(make_id("text", ref), "text", ref, text=text, content_hash=hash_text(text), source=ref,
                     stamp=src.stamp, metadata=meta)
        return [_Item(rec, src)]
    out = []
    for number, line in enumerate(content.splitlines(), start=1):
        text = line.strip()
        if text:
            item_ref = f"{ref}#L{number}"
            rec = Record(make_id("text", item_ref), "text", item_ref, text=text, content_hash=hash_text(text),
                         source=ref, stamp=src.stamp, metadata={**meta, "line": number})
            out.append(_Item(rec, src))
    return out


def _image_items(src: SourceFile, ref: str, meta: dict[str, Any], captions: list[tuple[str, dict[str, Any]]],
                 image_weight: float | None) -> list[_Item]:
    items = [_Item(Record(make_id("image", ref), "image", ref, source=ref, stamp=src.stamp, metadata=meta), src)]
    for i, (caption, extra) in enumerate(captions):
        cmeta = {**meta, **extra, "image": ref}
        items.append(_Item(Record(make_id("text", f"{ref}#caption{i}"), "text", caption, text=caption,
                                  content_hash=hash_text(caption), source=ref, stamp=src.stamp, metadata=cmeta), src))
        weight = "" if image_weight is None else f"\nw={image_weight}"
        items.append(_Item(Record(make_id("pair", f"{ref}#{i}"), "pair", ref, text=caption, source=ref,
                                  stamp=src.stamp, metadata={**meta, **extra}), src, caption=caption + weight))
    return items


def _same_except_hash(old: Record, new: Record) -> bool:
    return (old.modality, old.reference, old.text, old.source, old.stamp, dict(old.metadata)) == \
        (new.modality, new.reference, new.text, new.source, new.stamp, dict(new.metadata))


# -- running ------------------------------------------------------------------------------------------------------------


Progress = Callable[[int, int], None]


class _Run:
    def __init__(self, col: Collection, report: IngestReport, progress: Progress | None, total: int) -> None:
        self.col, self.report, self.progress = col, report, progress
        self.total, self.done = total, 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def write(self, records: list[Record], existed: set[str]) -> None:
        if records:
            self.col.upsert(records)
            for r in records:
                if r.id in existed:
                    self.report.updated += 1
                else:
                    self.report.added += 1


def ingest(
    col: Collection,
    paths: Sequence[str | os.PathLike[str]],
    *,
    recursive: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    lines: bool = False,
    prune: bool = False,
    captions: str | os.PathLike[str] | None = None,
    metadata: str | os.PathLike[str] | None = None,
    image_weight: float | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    processes: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Index image and text files under ``paths`` into ``col`` (see the module docstring); returns the counts.

    ``progress(done, total)`` is called after each committed batch (items to embed).
    """
    started = time.perf_counter()
    report = IngestReport()
    model = col._need_model("index files")
    if not paths:
        raise ConfigError("nothing to index: give at least one file or folder")
    _adopt_root(col, paths)
    files = discover(paths, recursive=recursive, include=include, exclude=exclude, failed=report.failed)
    report.files = len(files)
    caption_map = load_captions(captions) if captions else Annotations.empty()
    meta_map = load_metadata(metadata) if metadata else Annotations.empty()

    existing = {r.id: r for r in col.items()}
    by_source: dict[str, list[Record]] = defaultdict(list)
    for r in existing.values():
        if r.source:
            by_source[r.source].append(r)

    planned: list[_Item] = []
    seen_sources: set[str] = set()
    for src in files:
        ref = col.reference_for(src.path)
        seen_sources.add(ref)
        try:
            meta = check_metadata(meta_map.lookup(src.path, ref))
            if src.kind == "text":
                planned += _text_items(col, src, ref, lines, meta, report.failed)
            else:
                caps = [(c, check_metadata(extra)) for c, extra in caption_map.lookup_all(src.path, ref)]
                planned += _image_items(src, ref, meta, caps, image_weight)
        except InputError as exc:
            report.failed.append((str(src.path), str(exc)))

    # Items of files that still exist but no longer produce them (a removed line or caption) go now.
    planned_ids = {p.record.id for p in planned}
    stale = [r.id for src in seen_sources for r in by_source.get(src, []) if r.id not in planned_ids]
    # Items whose files are gone, under the folders indexed now: moves are found among them, the rest pruned.
    roots = [Path(p).expanduser().absolute() for p in paths]
    missing = [r for s, rs in by_source.items() if s not in seen_sources and _under(col.resolve(s), roots)
               and not _exists(col.resolve(s)) for r in rs]
    missing_by_hash: dict[tuple[str, str], list[Record]] = defaultdict(list)
    missing_sizes = set()
    for r in missing:
        missing_by_hash[(r.modality, r.content_hash)].append(r)
        missing_sizes.add(r.stamp.split(":", 1)[0])

    hashes = _Hashes()
    to_embed: dict[str, list[_Item]] = {"image": [], "text": [], "pair": []}
    refresh: list[Record] = []  # same content, new stamp or metadata: reuse the vector
    moves: list[tuple[Record, Record]] = []  # (new record, old record)
    for item in planned:
        rec, old = item.record, existing.get(item.record.id)
        if old is not None and _same_except_hash(old, rec):
            report.unchanged += 1
            continue
        if rec.modality == "text" or old is not None or rec.stamp.split(":", 1)[0] in missing_sizes:
            try:
                rec = item.record = _with_hash(rec, item, hashes)
            except OSError as exc:
                report.failed.append((str(item.file.path), f"cannot read: {exc}"))
                continue
        if old is not None and old.content_hash == rec.content_hash and old.modality == rec.modality:
            refresh.append(rec)
            if dict(old.metadata) == dict(rec.metadata) and (old.text, old.reference) == (rec.text, rec.reference):
                report.unchanged += 1
            else:
                report.updated += 1
            continue
        if old is None and rec.content_hash and missing_by_hash.get((rec.modality, rec.content_hash)):
            moves.append((rec, missing_by_hash[(rec.modality, rec.content_hash)].pop()))
            continue
        to_embed[rec.modality].append(item)

    if refresh:
        stored = {r.id: r for r in col.get_many([r.id for r in refresh], vectors=True)}
        col.upsert([replace(r, vector=stored[r.id].vector) for r in refresh if r.id in stored])
    if moves:
        stored = {r.id: r for r in col.get_many([old.id for _, old in moves], vectors=True)}
        col.upsert([replace(new, vector=stored[old.id].vector) for new, old in moves if old.id in stored])
        col.delete([old.id for _, old in moves])
        report.moved = len(moves)
        moved_ids = {old.id for _, old in moves}
        missing = [r for r in missing if r.id not in moved_ids]
    if stale:
        col.delete(stale)
    if prune and missing:
        report.removed = col.delete([r.id for r in missing])

    run = _Run(col, report, progress, sum(len(v) for v in to_embed.values()))
    existed = set(existing)
    _embed_images(run, model, to_embed["image"], hashes, existed, batch_size, workers, processes)
    _embed_texts(run, model, to_embed["text"], existed, batch_size)
    _embed_pairs(run, model, to_embed["pair"], hashes, existed, image_weight, batch_size, workers)
    report.seconds = time.perf_counter() - started
    return report


def _with_hash(rec: Record, item: _Item, hashes: _Hashes) -> Record:
    if rec.modality == "text":
        return rec
    image_hash = hashes(item.file.path)
    if rec.modality == "image":
        return replace(rec, content_hash=image_hash)
    return replace(rec, content_hash=hash_text(image_hash + "\n" + (item.caption or "")))


def _under(path: Path | None, roots: list[Path]) -> bool:
    if path is None:
        return False
    return any(path == r or r in path.parents for r in roots)


def _exists(path: Path | None) -> bool:
    return path is not None and path.exists()


def _adopt_root(col: Collection, paths: Sequence[str | os.PathLike[str]]) -> None:
    """Give a new collection a root (the folder indexed, or the common parent); follow a moved root."""
    tops = [Path(p).expanduser().absolute() for p in paths]
    dirs = [t if t.is_dir() else t.parent for t in tops]
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    if col.root is None and col.count() == 0:
        col.set_root(common)
    elif col.root is not None and not col.root.exists() and len(tops) == 1 and tops[0].is_dir():
        col.set_root(tops[0])  # the whole folder moved: its items keep their relative references


def _write_batches(run: _Run, items: list[_Item], batches: Iterable[Any], existed: set[str],
                   record_of: Callable[[_Item], Record]) -> None:
    """Store each embedded batch (the record ``record_of`` makes, with its vector) and report its failures."""
    for batch in batches:
        for f in batch.failures:
            run.report.failed.append((str(items[f.index].file.path), str(f.error)))
        run.write([replace(record_of(items[i]), vector=v) for i, v in zip(batch.indices.tolist(), batch.vectors)],
                  existed)
        run.advance(len(batch.indices) + len(batch.failures))


def _embed_images(run: _Run, model: Any, items: list[_Item], hashes: _Hashes, existed: set[str],
                  batch_size: int | None, workers: int | None, processes: bool) -> None:
    if not items:
        return

    def paths() -> Iterator[str]:
        for item in items:
            try:
                hashes(item.file.path)  # read ahead of decoding, so the hash is ready when the batch is
            except OSError:
                pass  # the decoder reports the file
            yield str(item.file.path)

    batches = model.iter_images(paths(), on_error="skip", batch_size=batch_size, workers=workers, processes=processes)
    _write_batches(run, items, batches, existed, lambda item: _with_hash(item.record, item, hashes))


def _embed_texts(run: _Run, model: Any, items: list[_Item], existed: set[str], batch_size: int | None) -> None:
    if not items:
        return
    batches = model.iter_texts([i.record.text for i in items], on_error="skip", batch_size=batch_size)
    _write_batches(run, items, batches, existed, lambda item: item.record)


def _embed_pairs(run: _Run, model: Any, items: list[_Item], hashes: _Hashes, existed: set[str],
                 image_weight: float | None, batch_size: int | None, workers: int | None) -> None:
    if not items:
        return
    images = [str(i.file.path) for i in items]
    texts = [i.record.text or "" for i in items]
    batches = model.iter_pairs(images, texts, image_weight=image_weight, on_error="skip", batch_size=batch_size,
                               workers=workers)
    _write_batches(run, items, batches, existed, lambda item: _with_hash(item.record, item, hashes))
