"""What a distributed ingest must do: inputs -> work rows, the same items single-machine ingest would make.

Folders and files go through :mod:`crossmodal.ingest`'s own discovery and
plan (:func:`~crossmodal.ingest.plan.plan_files`), so an item gets the same
id, reference, metadata, captions and pairs on both paths, and a re-index
keeps what earlier runs stored by the same rules (captions and metadata stay
unless new ones are given for the file).
Manifests (``.csv``, ``.parquet``) list one input per row:

==============================  =================================================================
column                          meaning
==============================  =================================================================
``path`` / ``file`` / ``image``  an image file (relative paths: to the manifest's folder)
``url``                          an image URL (http, https or file), fetched by the CPU tasks
``text``                         a text item (rows without an image)
``caption``                      with an image: a caption (a text item and an image+text pair)
``id``                           the item id (default: derived from the reference)
anything else                    metadata (str, int, float, bool, lists; empty cells are skipped)
==============================  =================================================================

Work already done is left out here, on the driver: an item whose stored
record has the same reference, text, source file, file stamp and metadata
is skipped, so a restarted job resumes where it stopped and nothing is
embedded twice.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..collection import Collection
from ..errors import ConfigError, InputError
from ..identity import file_stamp, hash_text, make_id
from ..ingest.discover import SourceFile, discover
from ..ingest.options import IngestOptions
from ..ingest.plan import given_for, image_items, plan_files, stored_by_source
from ..ingest.run import same_except_hash
from ..inputs import WITH_IMAGE
from ..stores.base import Record, check_metadata

__all__ = ["MANIFEST_SUFFIXES", "Plan", "WorkRow", "plan_inputs"]

MANIFEST_SUFFIXES = (".csv", ".parquet")
_LOCATION = ("path", "file", "image")
_RESERVED = (*_LOCATION, "url", "text", "caption", "id")
_CHECK = 5_000


@dataclass
class WorkRow:
    """One item to embed. ``location`` is the image file or URL ('' for texts); ``caption_key`` what a pair's
    content hash covers besides the image (its caption and fusion weight)."""

    record: Record
    location: str = ""
    caption_key: str = ""
    existed: bool = False

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {"id": r.id, "modality": r.modality, "reference": r.reference, "text": r.text, "source": r.source,
                "stamp": r.stamp, "metadata": json.dumps(dict(r.metadata), ensure_ascii=False),
                "content_hash": r.content_hash, "location": self.location, "caption_key": self.caption_key,
                "existed": self.existed}


@dataclass
class Plan:
    rows: list[WorkRow] = field(default_factory=list)
    unchanged: int = 0
    files: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


# -- manifests ---------------------------------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A manifest cell as metadata: None for empty; dates as ISO strings; NaN as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_cell(v) for v in value if _cell(v) is not None]
    return value


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV or Parquet manifest, as dicts (pyarrow reads both, inferring column types)."""
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise ConfigError(f"cannot read the manifest {path}: {exc}") from exc
    names = [n.strip().lower() for n in table.column_names]
    if not any(n in names for n in (*_LOCATION, "url", "text")):
        raise ConfigError(f"manifest {path} needs a 'path' (or 'file'/'image'), 'url' or 'text' column; "
                          f"it has {', '.join(table.column_names)}")
    return [dict(zip(names, row.values())) for row in table.to_pylist()]


def _manifest_rows(col: Collection, path: Path, image_weight: float | None, plan: Plan) -> Iterator[WorkRow]:
    base = path.parent
    for n, row in enumerate(read_manifest(path), start=2 if path.suffix.lower() == ".csv" else 1):
        where = f"{path}:{n}"
        try:
            meta = check_metadata({k: v for k, v in ((k, _cell(v)) for k, v in row.items() if k not in _RESERVED)
                                   if v is not None and v != []})
        except InputError as exc:
            plan.failed.append((where, str(exc)))
            continue
        given_id = _cell(row.get("id"))
        location = next((str(_cell(row[k])) for k in (*_LOCATION, "url") if _cell(row.get(k)) is not None), None)
        if location is None:
            text = _cell(row.get("text"))
            if not isinstance(text, str) or not text.strip():
                plan.failed.append((where, "the row has no path, url or text"))
                continue
            rec = Record(str(given_id) if given_id is not None else make_id("text", text), "text", text, text=text,
                         content_hash=hash_text(text), metadata=meta)
            yield WorkRow(rec)
            continue
        if "://" in location and not location.startswith("file://"):
            ref, local, stamp = location, None, ""
        else:
            local = Path(location.removeprefix("file://")).expanduser()
            local = local if local.is_absolute() else base / local
            try:
                stamp = file_stamp(local)
            except OSError as exc:
                plan.failed.append((str(local), f"cannot read: {exc.strerror or exc}"))
                continue
            ref = col.reference_for(local)
        caption = _cell(row.get("caption"))
        captions: list[tuple[str, dict[str, Any]]] = (
            [(caption.strip(), {})] if isinstance(caption, str) and caption.strip() else [])
        src = SourceFile(local or Path(ref), "image", stamp)
        for i, item in enumerate(image_items(src, ref, meta, captions, image_weight)):
            rec = item.record if local is not None else _without_source(item.record)
            if i == 0 and given_id is not None:
                rec = Record(str(given_id), rec.modality, rec.reference, text=rec.text, source=rec.source,
                             stamp=rec.stamp, metadata=rec.metadata)
            yield _image_row(replace(item, record=rec), str(local) if local is not None else location)


def _image_row(item: Any, location: str) -> WorkRow:
    """Images and pairs read the image; a caption's text item does not."""
    if item.record.modality not in WITH_IMAGE:
        return WorkRow(item.record)
    return WorkRow(item.record, location=location, caption_key=item.caption or "")


def _without_source(rec: Record) -> Record:
    """Items of URLs have no source file (so file-based re-index housekeeping never touches them)."""
    return Record(rec.id, rec.modality, rec.reference, text=rec.text, content_hash=rec.content_hash,
                  metadata=rec.metadata)


# -- folders and files ------------------------------------------------------------------------------------------------


def _file_rows(col: Collection, paths: Sequence[Path], opts: IngestOptions, plan: Plan) -> Iterator[WorkRow]:
    files = discover(paths, recursive=opts.recursive, include=opts.include, exclude=opts.exclude, failed=plan.failed,
                     max_file_size=opts.max_file_size)
    plan.files += len(files)
    refs = {src.path: col.reference_for(src.path) for src in files}
    file_plan = plan_files(files, refs, given_for(opts), stored_by_source(col.items()))
    plan.failed += file_plan.failed
    for item in file_plan.items:
        yield _image_row(item, str(item.file.path))


def plan_inputs(col: Collection, inputs: Sequence[str | os.PathLike[str]], options: IngestOptions | None = None) -> Plan:
    """The items ``inputs`` (folders, files, manifests) make, minus those already stored unchanged."""
    if not inputs:
        raise ConfigError("nothing to index: give at least one file, folder or manifest")
    opts = options or IngestOptions()
    plan = Plan()
    given = [Path(p).expanduser().absolute() for p in inputs]
    manifests = [p for p in given if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES]
    others = [p for p in given if p not in manifests]
    rows: dict[str, WorkRow] = {}  # by id: an item named twice is embedded once (the last wins, as upserts do)
    if others:
        for row in _file_rows(col, others, opts, plan):
            rows[row.record.id] = row
    for manifest in manifests:
        for row in _manifest_rows(col, manifest, opts.image_weight, plan):
            rows[row.record.id] = row
        plan.files += 1
    ids = list(rows)
    for start in range(0, len(ids), _CHECK):
        for old in col.get_many(ids[start:start + _CHECK]):
            row = rows[old.id]
            new = row.record  # images are hashed later; their unchanged stamp (or URL) stands for the content
            if same_except_hash(old, new) and new.content_hash in ("", old.content_hash):
                del rows[old.id]
                plan.unchanged += 1
            else:
                row.existed = True
    plan.rows = list(rows.values())
    return plan
