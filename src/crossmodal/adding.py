"""Adding inputs to a collection: each input's record (id, reference, content hash), what is stored already, the rest
embedded through the one dispatch and written in batches.

An item's id comes from its reference (or is given); its content hash from
what it holds (:mod:`crossmodal.identity`). An item whose content is stored
already is not embedded again (:func:`crossmodal.identity.change`): when
only its metadata, reference or text changed, the stored vector is written
with them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from .dispatch import iter_inputs
from .embedder import Failure
from .errors import InputError
from .identity import change, content_hash, hash_image_input, hash_text, make_id, pair_id, pair_key
from .inputs import Input
from .preprocessing.images import describe_input
from .retrieval.tokens import with_token_vectors
from .stores.base import Record, check_metadata
from .stores.codec import decode_record

if TYPE_CHECKING:
    from .embedder import Model


class Collection(Protocol):
    """What adding needs of a :class:`crossmodal.collection.Collection` (a protocol, so this module need not import it)."""

    backend: Any

    @property
    def backend_holds_token_vectors(self) -> bool: ...

    def reference_for(self, path: str | os.PathLike[str]) -> str: ...

    def upsert(self, records: Any, *, delete: Sequence[str] | None = None) -> list[str]: ...

    def _need_model(self, what: str) -> Model: ...

__all__ = ["AddResult", "Planned", "add", "as_list", "pending", "per_item", "plan"]


@dataclass
class AddResult:
    """What ``add_*`` did: one id per input (None where the input failed), and counts."""

    ids: list[str | None] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Planned:
    index: int  # position in the caller's input
    record: Record  # without vector yet
    input: Input  # what the model embeds


def as_list(items: Any, what: str) -> list[Any]:
    if isinstance(items, (str, bytes, os.PathLike)):
        raise InputError(f"{what} must be a list; wrap a single one in [...]", input=str(items)[:60])
    return list(items)


def per_item(values: Sequence[Any] | None, n: int, what: str) -> list[Any]:
    if values is None:
        return [None] * n
    values = list(values)
    if len(values) != n:
        raise InputError(f"{what} has {len(values)} entries for {n} inputs")
    return values


def _hash_image(image: Any, ref: str) -> str:
    try:
        return hash_image_input(image)
    except OSError:
        return hash_text("missing:" + ref)  # embedding will fail and name the file


def _reference(col: Collection, i: int, item: Input, given: str | None) -> str:
    if given is not None:
        return str(given)
    if item.kind == "text":
        return item.text  # type: ignore[return-value]
    if isinstance(item.image, (str, os.PathLike)):
        return col.reference_for(item.image)
    raise InputError(
        f"image #{i} ({describe_input(item.image)}) is not a file, so it needs a reference saying where it "
        "can be found again: pass references=[...] (the store keeps references, never image bytes)",
        input=describe_input(item.image), index=i,
    )


def _record(item: Input, item_id: str | None, ref: str, meta: Mapping[str, Any] | None) -> Record:
    text = item.text or ""
    image_hash = _hash_image(item.image, ref) if item.kind != "text" else ""
    key = pair_key(text, item.image_weight) if item.kind == "pair" else text
    default_id = pair_id(ref, text) if item.kind == "pair" else make_id(item.kind, ref)
    return Record(item_id or default_id, item.kind, ref, text=item.text if item.kind != "image" else None,
                  content_hash=content_hash(item.kind, text=key, image_hash=image_hash), metadata=check_metadata(meta))


def plan(col: Collection, inputs: Sequence[Input], *, metadata: Sequence[Mapping[str, Any] | None] | None = None,
         ids: Sequence[str | None] | None = None, references: Sequence[str | None] | None = None) -> list[Planned]:
    """Each input's record (no vector yet): its id, reference, content hash and checked metadata."""
    n = len(inputs)
    refs = [_reference(col, i, item, given) for i, (item, given) in
            enumerate(zip(inputs, per_item(references, n, "references")))]
    metas = per_item(metadata, n, "metadata")
    given_ids = per_item(ids, n, "ids")
    return [Planned(i, _record(item, str(given_ids[i]) if given_ids[i] is not None else None, refs[i], metas[i]), item)
            for i, item in enumerate(inputs)]


def pending(col: Collection, planned: Sequence[Planned]) -> tuple[list[Planned], list[Record], int, set[str]]:
    """(what must be embedded, what only needs its new fields written with the stored vector, how many are
    unchanged, the ids stored already)."""
    existing = {r.id: decode_record(r) for r in col.backend.get([p.record.id for p in planned])}
    todo: list[Planned] = []
    refresh: list[Record] = []
    unchanged = 0
    for p in planned:
        what = change(existing.get(p.record.id), p.record)
        if what == "embed":
            todo.append(p)
        elif what == "unchanged":
            unchanged += 1
        else:
            refresh.append(p.record)
    return todo, refresh, unchanged, set(existing)


def add(col: Collection, planned: list[Planned], on_error: str, *, batch_size: int | None = None,
        workers: int | None = None) -> AddResult:
    """Skip items whose content and metadata are stored already, embed the rest and write them in batches."""
    result = AddResult(ids=[p.record.id for p in planned])
    todo, refresh, result.unchanged, existing = pending(col, planned)
    if refresh:  # new metadata for unchanged content: reuse the stored vectors
        stored = {r.id: r for r in col.backend.get([r.id for r in refresh], vectors=True)}
        col.upsert([replace(r, vector=stored[r.id].vector, sparse=stored[r.id].sparse,
                            multivector=stored[r.id].multivector) for r in refresh])
        result.updated += len(refresh)
    if not todo:
        return result
    kinds = sorted({p.input.kind for p in todo})
    model = col._need_model(f"embed {' and '.join(kinds)} items")
    batches = iter_inputs(model, [p.input for p in todo], on_error="skip", batch_size=batch_size, workers=workers)
    for batch in batches:
        for f in batch.failures:
            p = todo[f.index]
            if on_error == "raise":
                raise f.error.at(p.index) if f.error.index is None else f.error
            result.ids[p.index] = None
            result.failures.append(Failure(index=p.index, input=f.input, error=f.error))
        records = [replace(todo[i].record, vector=v) for i, v in zip(batch.indices.tolist(), batch.vectors)]
        if col.backend_holds_token_vectors:
            records = with_token_vectors(model, records)
        for r in records:
            if r.id in existing:
                result.updated += 1
            else:
                result.added += 1
        if records:
            col.upsert(records)
    result.failures.sort(key=lambda f: f.index)
    return result
