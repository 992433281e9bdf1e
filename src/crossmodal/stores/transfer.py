"""Copying collections between store backends, vectors included: no model, no re-embedding.

>>> from crossmodal.stores.transfer import copy_collections
>>> copy_collections(src_backend, dst_backend, names=["photos"], batch_size=2000)

(:func:`crossmodal.store.copy_collections` takes stores, paths and URIs too.)

Each collection is created in the destination with the source's
:class:`~crossmodal.stores.base.CollectionInfo` (same space fingerprint, root
and model source), or, if one of that name exists, checked to be in the same
space (:class:`~crossmodal.errors.SpaceMismatch` otherwise). Items are read
in id order and upserted in batches, so an interrupted copy is simply run
again: ids are kept, nothing is duplicated, and the rerun completes it.
Items already in the destination that the source lacks are left alone (and
reported). A large copy into an empty collection runs inside the
destination's :meth:`~crossmodal.stores.base.CollectionBackend.bulk_load`
(pgvector builds its ANN index once, at the end).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import CollectionNotFound, ConfigError
from .base import CollectionBackend, Record, VectorStore

__all__ = ["BULK_THRESHOLD", "CollectionCopy", "CopyReport", "Progress", "copy_collection", "copy_collections"]

#: copies at least this large into an empty destination run as the destination's bulk load
BULK_THRESHOLD = 10_000

Progress = Callable[[str, int, int], None]


@dataclass
class CollectionCopy:
    name: str
    copied: int = 0
    #: items the destination holds that the source does not (left in place)
    extra: int = 0
    created: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "copied": self.copied, "extra": self.extra, "created": self.created,
                "seconds": round(self.seconds, 3)}


@dataclass
class CopyReport:
    source: str
    destination: str
    collections: list[CollectionCopy] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(c.copied for c in self.collections)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "destination": self.destination, "copied": self.copied,
                "collections": [c.to_dict() for c in self.collections]}


def _batches(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for r in records:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _target(dst: VectorStore, src_col: CollectionBackend, report: CollectionCopy, first: Sequence[Record]
            ) -> CollectionBackend:
    info = src_col.info
    if info.multivector_dim is None:
        # a collection from before the multi-vector size was recorded: take it from the items (Qdrant needs it)
        sizes = {r.multivector.shape[1] for r in first if r.multivector is not None and r.multivector.ndim == 2}
        if sizes:
            info = replace(info, multivector_dim=int(sizes.pop()))
    try:
        col = dst.open_collection(info.name)
    except CollectionNotFound:
        report.created = True
        return dst.create_collection(info)
    col.info.space.check_same(info.space, what=f"collection {info.name!r} in {dst.uri}")
    return col


def copy_collection(src_col: CollectionBackend, dst: VectorStore, *, batch_size: int = 1000,
                    progress: Progress | None = None) -> CollectionCopy:
    """Copy one collection's items (with vectors) into ``dst``; see the module docstring."""
    started = time.perf_counter()
    name = src_col.info.name
    report = CollectionCopy(name)
    total = src_col.count()
    batches = _batches(src_col.scan(vectors=True), batch_size)
    first = next(batches, [])
    dst_col = _target(dst, src_col, report, first)
    bulk = dst_col.count() == 0 and total >= BULK_THRESHOLD
    with dst_col.bulk_load() if bulk else contextlib.nullcontext():
        for batch in itertools.chain([first] if first else [], batches):
            dst_col.upsert(batch)
            report.copied += len(batch)
            if progress is not None:
                progress(name, report.copied, total)
    report.extra = max(0, dst_col.count() - src_col.count())
    report.seconds = time.perf_counter() - started
    return report


def copy_collections(
    src: VectorStore,
    dst: VectorStore,
    *,
    names: Sequence[str] | None = None,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy collections (all, or ``names``) from backend ``src`` to backend ``dst``; see the module docstring."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if src.uri == dst.uri and src is not dst and not src.uri.startswith("memory:"):
        raise ConfigError(f"source and destination are the same store ({src.uri})")
    if src is dst:
        raise ConfigError("source and destination are the same store")
    known = [i.name for i in src.list_collections()]
    wanted = list(names) if names else known
    missing = [n for n in wanted if n not in known]
    if missing:
        raise CollectionNotFound(f"no collection {', '.join(map(repr, missing))} in {src.uri} "
                                 f"(collections: {', '.join(known) or 'none'})")
    report = CopyReport(src.uri, dst.uri)
    for name in wanted:
        report.collections.append(copy_collection(src.open_collection(name), dst, batch_size=batch_size,
                                                  progress=progress))
    return report
