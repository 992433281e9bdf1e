"""One ingest run: plan every file, reuse what is stored, embed the rest in committed batches, then clean up."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..collection import WRITE_BATCH, Collection
from ..dispatch import iter_inputs
from ..errors import ConfigError
from ..identity import change, content_hash, hash_file
from ..inputs import Input
from ..retrieval.tokens import with_token_vectors
from ..stores.base import Record
from .discover import SourceFile, discover
from .options import IngestOptions
from .plan import Item, given_for, plan_files, stored_by_source
from .report import IngestReport

__all__ = ["Progress", "adopt_root", "ingest", "same_except_hash"]

Progress = Callable[[int, int], None]


class _Hashes:
    """File content hashes, each computed once; a file that cannot be read keeps its error."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._known: dict[Path, str] = {}
        self.errors: dict[Path, OSError] = {}

    def __call__(self, path: Path) -> str:
        h = self._known.get(path)
        if h is None:
            if path in self.errors:
                raise self.errors[path]
            try:
                h = self._known[path] = hash_file(path, self.max_size)
            except OSError as exc:
                self.errors[path] = exc
                raise
        return h

    def readable(self, path: Path) -> bool:
        try:
            self(path)
        except OSError:
            return False
        return True


def same_except_hash(old: Record, new: Record) -> bool:
    """The stored item already holds what ``new`` would (its content hash aside: a file with the same stamp)."""
    return (old.modality, old.reference, old.text, old.source, old.stamp, dict(old.metadata)) == \
        (new.modality, new.reference, new.text, new.source, new.stamp, dict(new.metadata))


def _with_hash(rec: Record, item: Item, hashes: _Hashes) -> Record:
    """The record with its content hash (a text's is known when planned; an image's needs its file read)."""
    if rec.modality == "text":
        return rec
    return replace(rec, content_hash=content_hash(rec.modality, text=item.caption or "",
                                                  image_hash=hashes(item.file.path)))


def _size(stamp: str) -> str:
    return stamp.split(":", 1)[0]


class _Run:
    """The state of one run: the collection, the report, progress, and the files whose items failed."""

    def __init__(self, col: Collection, report: IngestReport, progress: Progress | None, hashes: _Hashes) -> None:
        self.col, self.report, self.progress, self.hashes = col, report, progress, hashes
        self.total = self.done = 0
        self.failed_sources: set[str] = set()

    def fail(self, item: Item, reason: str) -> None:
        self.report.failed.append((str(item.file.path), reason))
        self.failed_sources.add(item.record.source)

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def write(self, records: list[Record], existed: set[str]) -> None:
        if records:
            if self.col.backend_holds_token_vectors and self.col.model is not None:
                records = with_token_vectors(self.col.model, records)  # in the same write as the item
            self.col.upsert(records)
            for r in records:
                if r.id in existed:
                    self.report.updated += 1
                else:
                    self.report.added += 1


def ingest(
    col: Collection,
    paths: Sequence[str | os.PathLike[str]],
    options: IngestOptions | None = None,
    *,
    progress: Progress | None = None,
    **overrides: Any,
) -> IngestReport:
    """Index image and text files under ``paths`` into ``col`` (see the package docstring); returns the counts.

    ``options``: how (:class:`~crossmodal.ingest.options.IngestOptions`); keyword ``overrides`` replace some
    of them by name (``ingest(col, ["photos"], captions="captions.tsv", workers=0)``). ``progress(done,
    total)`` is called after each committed batch (items to embed). Files that are not regular files or are
    larger than ``max_file_size`` bytes are reported as failures, never read.
    """
    started = time.perf_counter()
    opts = (options or IngestOptions()).with_overrides(overrides)
    report = IngestReport()
    model = col._need_model("index files")
    if not paths:
        raise ConfigError("nothing to index: give at least one file or folder")
    max_file_size = opts.max_file_size
    adopt_root(col, paths)
    files = discover(paths, recursive=opts.recursive, include=opts.include, exclude=opts.exclude,
                     failed=report.failed, max_file_size=max_file_size)
    report.files = len(files)
    given = given_for(opts)

    existing = {r.id: r for r in col.items()}
    by_source = stored_by_source(existing.values())
    refs = {src.path: col.reference_for(src.path) for src in files}
    seen = set(refs.values())
    # Items whose files are gone, under the folders indexed now: moves are found among them, the rest pruned.
    roots = [Path(p).expanduser().absolute() for p in paths]
    missing = [r for s, rs in by_source.items() if s not in seen and _under(col.resolve(s), roots)
               and not _exists(col.resolve(s)) for r in rs]
    missing_by_hash: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in missing:
        missing_by_hash[(r.modality, r.content_hash)].append(r)
    missing_sizes = {_size(r.stamp) for r in missing}

    hashes = _Hashes(max_file_size)
    run = _Run(col, report, progress, hashes)

    def moved_image(src: SourceFile) -> Record | None:
        if _size(src.stamp) not in missing_sizes or not hashes.readable(src.path):
            return None
        candidates = missing_by_hash.get(("image", hashes(src.path)))
        return candidates.pop() if candidates else None

    def moved_text(content_hash: str) -> Record | None:
        found = missing_by_hash.get(("text", content_hash))
        return found[-1] if found else None

    file_plan = plan_files(files, refs, given, by_source, moved_image=moved_image,
                           moved_text=moved_text if missing else None)
    report.failed += file_plan.failed
    planned, stale, moved_from = file_plan.items, file_plan.stale, file_plan.moved_from

    to_embed: list[Item] = []
    refresh: list[Record] = []  # same content, new stamp or metadata: reuse the vector
    moves: list[tuple[Record, Record]] = []  # (new record, old record)
    for item in planned:
        rec, old = item.record, existing.get(item.record.id)
        if old is not None and same_except_hash(old, rec):
            report.unchanged += 1
            continue
        if rec.modality == "text" or old is not None or _size(rec.stamp) in missing_sizes:
            try:
                rec = item.record = _with_hash(rec, item, hashes)
            except OSError as exc:
                run.fail(item, f"cannot read: {exc}")
                continue
        what = change(old, rec)
        if what != "embed":  # same content: reuse the vector (a new stamp, or new metadata, is written with it)
            refresh.append(rec)
            if what == "unchanged":
                report.unchanged += 1
            else:
                report.updated += 1
            continue
        if old is None and rec.id in moved_from:
            moves.append((rec, moved_from[rec.id]))
            continue
        if old is None and rec.content_hash and (candidates := missing_by_hash.get((rec.modality, rec.content_hash))):
            moves.append((rec, _take(candidates, item.origin)))
            continue
        to_embed.append(item)

    if refresh:
        for start in range(0, len(refresh), WRITE_BATCH):
            chunk = refresh[start:start + WRITE_BATCH]
            stored = {r.id: r for r in col.get_many([r.id for r in chunk], vectors=True)}
            col.upsert([_with_vectors_of(r, stored[r.id]) for r in chunk if r.id in stored])
    _move(col, moves, report)
    moved_ids = {old.id for _, old in moves}
    if opts.prune:
        gone = [r.id for r in missing if r.id not in moved_ids]
        report.removed += col.delete(gone) if gone else 0

    run.total = len(to_embed)
    existed = set(existing)
    _embed(run, model, to_embed, existed, opts)
    # only now, with their replacements stored: what files no longer produce goes (a failed file keeps it all)
    doomed = [i for ref, ids in stale.items() if ref not in run.failed_sources for i in ids]
    report.removed += col.delete(doomed) if doomed else 0
    report.seconds = time.perf_counter() - started
    return report


def _with_vectors_of(record: Record, stored: Record) -> Record:
    """``record`` with the dense, sparse and multi-vectors of the stored item whose content it has."""
    return replace(record, vector=stored.vector, sparse=stored.sparse, multivector=stored.multivector)


def _take(candidates: list[Record], origin: str) -> Record:
    """The stored item a new one moves: preferably one of the file it was planned from."""
    for i in range(len(candidates) - 1, -1, -1):
        if candidates[i].source == origin:
            return candidates.pop(i)
    return candidates.pop()


def _move(col: Collection, moves: list[tuple[Record, Record]], report: IngestReport) -> None:
    """Store each moved item at its new place and delete the old one in the same atomic write, batch by batch."""
    for start in range(0, len(moves), WRITE_BATCH):
        chunk = moves[start:start + WRITE_BATCH]
        stored = {r.id: r for r in col.get_many([old.id for _, old in chunk], vectors=True)}
        done = [(new, old) for new, old in chunk if old.id in stored]
        col.upsert([_with_vectors_of(new, stored[old.id]) for new, old in done], delete=[old.id for _, old in done])
        report.moved += len(done)


def _under(path: Path | None, roots: list[Path]) -> bool:
    if path is None:
        return False
    return any(path == r or r in path.parents for r in roots)


def _exists(path: Path | None) -> bool:
    return path is not None and os.path.lexists(path)


def adopt_root(col: Collection, paths: Sequence[str | os.PathLike[str]]) -> None:
    """Give a new collection a root (the folder indexed, or the common parent); follow a moved root."""
    tops = [Path(p).expanduser().absolute() for p in paths]
    dirs = [t if t.is_dir() else t.parent for t in tops]
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    if col.root is None and col.count() == 0:
        col.set_root(common)
    elif col.root is not None and not col.root.exists() and len(tops) == 1 and tops[0].is_dir():
        col.set_root(tops[0])  # the whole folder moved: its items keep their relative references


def _write_batches(run: _Run, items: list[Item], batches: Iterable[Any], existed: set[str],
                   record_of: Callable[[Item], Record]) -> None:
    """Store each embedded batch (the record ``record_of`` makes, with its vector) and report its failures."""
    for batch in batches:
        for f in batch.failures:
            item = items[f.index]
            unreadable = run.hashes.errors.get(item.file.path)
            run.fail(item, f"cannot read: {unreadable}" if unreadable is not None else str(f.error))
        run.write([replace(record_of(items[i]), vector=v) for i, v in zip(batch.indices.tolist(), batch.vectors)],
                  existed)
        run.advance(len(batch.indices) + len(batch.failures))


def _read_image(path: Path, hashes: _Hashes) -> str | bytes:
    """The file to decode, hashed first (read ahead of decoding, so the hash is ready when the batch is); a file
    that cannot be read is not handed to the decoder (a FIFO swapped in would block it), but an empty input that
    fails at once, reported with the read error."""
    return str(path) if hashes.readable(path) else b""


def _embed(run: _Run, model: Any, items: list[Item], existed: set[str], opts: IngestOptions) -> None:
    """Embed the items (images, texts and pairs, through the one dispatch) and store each batch as it comes."""
    if not items:
        return
    inputs = [Input("image", image=i.file.path) if i.record.modality == "image" else
              Input("text", text=i.record.text) if i.record.modality == "text" else
              Input("pair", text=i.record.text or "", image=i.file.path, image_weight=opts.image_weight)
              for i in items]
    batches = iter_inputs(model, inputs, batch_size=opts.batch_size, workers=opts.workers, processes=opts.processes,
                          image_of=lambda inp: _read_image(inp.image, run.hashes))
    _write_batches(run, items, batches, existed, lambda item: _with_hash(item.record, item, run.hashes))
