"""Collections: list, search (text, image, pair, vector, more like this), add, get, delete, thumbnails.

Every store call runs on the store's one thread (``Services.in_store``);
query embeddings go through the shared micro-batcher, so concurrent searches
share model calls just like ``/v1/embeddings`` requests do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Hashable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from ...duplicates import DEFAULT_THRESHOLD
from ...errors import CollectionNotFound, ConfigError, DimensionMismatch, InputError, ItemNotFound, SpaceMismatch
from ...inputs import Input, query_kind
from ...retrieval.highlight import highlight_spans
from ...stores.base import MAX_ID_LENGTH, MODALITIES, check_metadata
from ..errors import relabel
from ..inputs import CheckedImage
from ..precomputed import PrecomputedModel, pair_key
from ..responses import JSONResponse
from ..schemas import (
    AddItem,
    AddItemsRequest,
    AddItemsResponse,
    CollectionList,
    DuplicatesResponse,
    ErrorResponse,
    ImageRef,
    ItemOut,
    SearchRequest,
    SearchResponse,
)
from ..security import require_write
from ..services import Services, services
from ..thumbnails import SIZES, render_thumbnail
from ..uploads import item_image_bytes, save_upload, save_url_copy

__all__ = ["router"]

router = APIRouter(tags=["collections"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 403, 404, 413, 422, 503)}


def _thumbnail_url(name: str, item_id: str, modality: str) -> str | None:
    if modality not in ("image", "pair"):
        return None
    return f"/v1/collections/{quote(name, safe='')}/thumbnails/{quote(item_id, safe='')}"


def _item_out(name: str, record: Any, vector: bool = False) -> dict[str, Any]:
    return {
        "id": record.id,
        "modality": record.modality,
        "reference": record.reference,
        "text": record.text,
        "metadata": dict(record.metadata),
        "content_hash": record.content_hash or None,
        "thumbnail": _thumbnail_url(name, record.id, record.modality),
        "vector": [float(x) for x in record.vector] if vector and record.vector is not None else None,
    }


async def _open(svc: Services, name: str) -> Any:
    """The collection (no model attached: queries are embedded here, through the batcher)."""
    store = svc.require_store()
    return await svc.in_store(store.collection, name, None, create=False)


# -- listing -----------------------------------------------------------------------------------------------------


@router.get("/v1/collections", response_model=CollectionList, responses=_ERRORS, summary="Every collection of the store")
async def list_collections(request: Request) -> dict[str, Any]:
    svc = services(request)
    store = svc.require_store()
    model, _ = svc.require_model()

    def describe() -> list[dict[str, Any]]:
        out = []
        for info in store.collections():
            col = store.collection(info.name, create=False)
            counts = {m: col.count(modality=m) for m in MODALITIES}
            space = info.space
            out.append({"name": info.name, "count": sum(counts.values()), "counts": counts,
                        "model": svc.model_name_of(space),
                        "dim": space.dim, "mode": space.mode,
                        "searchable": (space.fingerprint, space.dim, space.pairs) ==
                                      (model.space.fingerprint, model.space.dim, model.space.pairs)})
        return out

    return {"object": "list", "data": await svc.in_store(describe)}


# -- searching ---------------------------------------------------------------------------------------------------


def _check_one_source(ref: ImageRef, name: str) -> None:
    given = [k for k in ("url", "path", "data") if getattr(ref, k) is not None]
    if len(given) != 1:
        raise InputError(f"{name} must give exactly one of url, path or data (got {', '.join(given) or 'none'})",
                         input=name)


def _same_space(model: Any, space: Any) -> bool:
    return bool((space.fingerprint, space.dim, space.normalized) == (model.space.fingerprint, model.space.dim,
                                                                     model.space.normalized))


def _check_space(svc: Services, space: Any, name: str) -> None:
    """:class:`SpaceMismatch` unless the served model embeds in the collection's space (named as clients see them)."""
    model, _ = svc.require_model()
    if not _same_space(model, space):
        raise SpaceMismatch(
            f"collection {name!r} was built with model {svc.model_name_of(space)!r} (dim {space.dim}, "
            f"{space.mode}); the served model {svc.model_id()!r} (dim {model.dim}, {model.mode}) embeds in "
            "another space, so text and image queries cannot search it and items cannot be added to it. "
            "Search it by vector or like, or serve the model it was built with"
        )
    if space.pairs != model.space.pairs:
        raise SpaceMismatch(
            f"collection {name!r} holds image+text pairs made by {space.pairs}; the served model "
            f"{svc.model_id()!r} makes pairs by {model.space.pairs}, so its pairs and queries would mix with "
            "vectors made by another rule. Search it by vector or like, or serve a model with its pair rule"
        )


async def _image_bytes(svc: Services, ref: ImageRef, name: str) -> tuple[CheckedImage, str | None]:
    """(the image, source URL if fetched) of an image reference: exactly one of url, path, data."""
    _check_one_source(ref, name)
    reader = svc.inputs
    if ref.url is not None:
        image = await reader.image_url(ref.url, name)
        return image, ref.url if ref.url.lower().startswith(("http://", "https://")) else None
    if ref.path is not None:
        return await reader.image_path(ref.path, name), None
    return reader.image_base64(ref.data or "", name), None


@router.post("/v1/collections/{name}/search", response_model=SearchResponse, responses=_ERRORS,
             summary="Search by text, image, image+text pair, vector, or an item's id (more like this)")
async def search(name: str, body: SearchRequest, request: Request) -> JSONResponse:
    svc = services(request)
    model, batcher = svc.require_model()
    limits = svc.settings.limits
    if body.top_k > limits.max_top_k:
        raise ConfigError(f"top_k={body.top_k} is over this server's limit of {limits.max_top_k}")
    kind = query_kind(text=body.text, image=body.image, vector=body.vector, like=body.like)
    if kind is None:
        kinds = [k for k in ("vector", "like") if getattr(body, k) is not None]
        if body.text is not None or body.image is not None:
            kinds.append("text/image")
        raise InputError("a search needs exactly one query: text, image, text + image (a pair), vector, or like "
                         f"(got {', '.join(kinds) or 'none'})")
    if body.duplicate_threshold is not None and not body.hide_duplicates:
        raise InputError("duplicate_threshold goes with hide_duplicates: true", input="duplicate_threshold")
    col = await _open(svc, name)
    options: dict[str, Any] = {"top_k": body.top_k, "modality": body.modality, "where": body.where}
    if body.hide_duplicates:
        options["hide_duplicates"] = True if body.duplicate_threshold is None else body.duplicate_threshold
    if body.using != "dense" or body.rerank is not None:
        if body.text is None:
            what = f"a {body.using} search" if body.using != "dense" else f"rerank={body.rerank!r}"
            raise InputError(f"{what} needs text (the words to match)")
        options.update(using=body.using, keywords=svc.inputs.text(body.text, "text"), rerank=body.rerank)
    if body.using == "sparse" or body.rerank is not None:
        # the model's sparse and multi-vector outputs embed the query text: it must be the collection's model
        _check_space(svc, col.space, name)
        col.model = model
    elif body.using == "hybrid" and _same_space(model, col.space):
        col.model = model  # hybrid adds the sparse signal when the served model is the collection's and has one
    if body.using in ("keyword", "sparse"):
        hits = await svc.in_store(col.search, **options)
    elif kind == "input":
        _check_space(svc, col.space, name)
        text = svc.inputs.text(body.text, "text") if body.text is not None else None
        image = (await _image_bytes(svc, body.image, "image"))[0] if body.image is not None else None
        result = await batcher.embed([Input.of(text=text, image=image.data if image else None,
                                               image_weight=body.image_weight, pixels=image.pixels if image else 0)])
        hits = await svc.in_store(col.search, vector=result.vectors[0], **options)
    elif kind == "vector":
        if len(body.vector) != col.space.dim:
            raise DimensionMismatch(f"the query vector has {len(body.vector)} dimensions, but collection {name!r} "
                                    f"holds vectors of dim {col.space.dim}")
        hits = await svc.in_store(col.search, vector=body.vector, **options)
    else:
        hits = await svc.in_store(col.search, like=body.like, **options)
    out = [{"id": h.id, "score": float(h.score), "modality": h.modality, "reference": h.reference, "text": h.text,
            "metadata": dict(h.metadata), "thumbnail": _thumbnail_url(name, h.id, h.modality)} for h in hits]
    if body.using != "dense" or body.rerank is not None:
        for h, o in zip(hits, out):
            o["signals"] = dict(h.signals)
            o["highlights"] = [list(s) for s in highlight_spans(h.text, body.text or "")] if h.text else []
    return JSONResponse({"collection": name, "hits": out})


# -- adding ------------------------------------------------------------------------------------------------------


class _Prepared:
    """One item ready for ``add_*``: its image (the bytes that were checked) and reference, text, id, metadata."""

    def __init__(self, index: int, item: AddItem) -> None:
        self.index = index
        self.id = item.id
        self.text = item.text
        self.metadata = item.metadata
        self.image: bytes | None = None
        self.pixels = 0
        self.path: Path | None = None  # an image read from a file under a root: its reference is its path
        self.url: str | None = None  # an image fetched by URL: its reference is the URL
        self.reference: str | None = None

    @property
    def input(self) -> Input:
        return Input.of(text=self.text, image=self.image, pixels=self.pixels)

    def set_image(self, image: CheckedImage) -> None:
        self.image, self.pixels, self.path = image.data, image.pixels, image.path

    def key(self) -> Hashable:
        """What the collection will ask :class:`PrecomputedModel` to embed for this item."""
        if self.image is None:
            return self.text
        return pair_key(self.image, self.text) if self.text is not None else self.image


async def _prepare(svc: Services, index: int, item: AddItem) -> _Prepared:
    name = f"items[{index}]"
    p = _Prepared(index, item)
    # Checked here, before anything is stored, so a bad item cannot leave the others half added.
    p.metadata = check_metadata(item.metadata)
    if item.id is not None and not 1 <= len(item.id) <= MAX_ID_LENGTH:
        raise InputError(f"{name}.id must have 1 to {MAX_ID_LENGTH} characters", input=name)
    if item.text is not None:
        svc.inputs.text(item.text, f"{name}.text")
    if item.image is None:
        if item.text is None:
            raise InputError(f"{name} needs a text, an image, or both (a pair)", input=name)
        return p
    ref = item.image
    _check_one_source(ref, f"{name}.image")
    image, p.url = await _image_bytes(svc, ref, f"{name}.image")
    p.set_image(image)
    return p


async def _keep_images(svc: Services, prepared: list[_Prepared]) -> None:
    """Once every check passed: keep uploaded and fetched images (the store keeps only references).

    An image read from a file under a root keeps its path; its vector is made from the bytes read.
    """
    for p in prepared:
        if p.image is None or p.path is not None:
            continue
        if p.url is not None:
            await anyio.to_thread.run_sync(save_url_copy, svc.settings, p.url, p.image)
            p.reference = p.url
        else:
            p.reference = await anyio.to_thread.run_sync(save_upload, svc.settings, p.image)


async def _embed_prepared(svc: Services, prepared: list[_Prepared]) -> dict[Hashable, Any]:
    """Every item's vector (or its error), made by the shared batcher: input -> vector or InputError."""
    _, batcher = svc.require_model()
    result = await batcher.embed([p.input for p in prepared], partial=True)
    table: dict[Hashable, Any] = {}
    for i, p in enumerate(prepared):
        table[p.key()] = result.failures.get(i, result.vectors[i])
    return table


def _with_paths(col: Any, prepared: list[_Prepared]) -> list[_Prepared]:
    """An image read from a file under a root is referenced by its path, as the collection records paths."""
    for p in prepared:
        if p.path is not None:
            p.reference = col.reference_for(p.path)
    return prepared


def _fields(prepared: list[_Prepared]) -> dict[str, Any]:
    return {"ids": [p.id for p in prepared], "metadata": [p.metadata for p in prepared],
            "references": [p.reference for p in prepared]}


def _add_all(col: Any, prepared: list[_Prepared]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Add every item in one call; returns the records in input order (None where failed) and the failures."""
    _with_paths(col, prepared)
    result = col.add([p.input for p in prepared], on_error="skip", workers=0, **_fields(prepared))
    failures: list[dict[str, Any]] = []
    for f in result.failures:
        error = relabel(f.error, f"items[{prepared[f.index].index}]")
        failures.append({"index": prepared[f.index].index, "code": error.code, "message": str(error), "error": error})
    found = {r.id: r for r in col.get_many([i for i in result.ids if i is not None])}
    return [found.get(i) if i else None for i in result.ids], failures


async def _form_items(svc: Services, request: Request) -> list[_Prepared]:
    """A multipart upload: ``file`` (repeatable), optional ``text`` (one per file: pairs), ``metadata``, ``id``."""
    limits = svc.settings.limits
    form = await request.form(max_files=limits.max_images * 2 + 8, max_fields=limits.max_images * 4 + 16)
    files = [f for f in form.getlist("file") if not isinstance(f, str)]
    texts = [t for t in form.getlist("text") if isinstance(t, str)]
    ids = [t for t in form.getlist("id") if isinstance(t, str)]
    svc.inputs.check_counts(images=len(files))
    if not files:
        raise InputError("a multipart upload needs at least one 'file' field")
    if texts and len(texts) != len(files):
        raise InputError(f"give one 'text' per 'file' for pairs ({len(texts)} texts, {len(files)} files)")
    if ids and len(ids) != len(files):
        raise InputError(f"give one 'id' per 'file' ({len(ids)} ids, {len(files)} files)")
    raw_meta = form.get("metadata")
    metas: list[Any] = [None] * len(files)
    if isinstance(raw_meta, str) and raw_meta.strip():
        try:
            parsed = json.loads(raw_meta)
        except ValueError as exc:
            raise InputError("'metadata' must be JSON: an object (for every file) or a list (one per file)") from exc
        metas = parsed if isinstance(parsed, list) else [parsed] * len(files)
        if len(metas) != len(files) or not all(m is None or isinstance(m, dict) for m in metas):
            raise InputError("'metadata' must be an object, or a list of objects with one per file")
    prepared = []
    for i, f in enumerate(files):
        text = texts[i] if texts else None
        if text is not None:
            svc.inputs.text(text, f"text[{i}]")
        p = _Prepared(i, AddItem(id=ids[i] if ids else None, text=text, metadata=metas[i]))
        p.metadata = check_metadata(metas[i])
        p.set_image(svc.inputs.checked(await f.read(limits.max_image_bytes + 1), f"file[{i}]"))
        prepared.append(p)
    return prepared


@router.post("/v1/collections/{name}/items", response_model=AddItemsResponse, responses=_ERRORS,
             dependencies=[Depends(require_write)],
             summary="Add texts, images (by upload, URL or path under a root) and pairs; creates the collection",
             openapi_extra={"requestBody": {"content": {
                 "application/json": {"schema": AddItemsRequest.model_json_schema()},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                     "text": {"type": "array", "items": {"type": "string"}},
                     "id": {"type": "array", "items": {"type": "string"}},
                     "metadata": {"type": "string", "description": "JSON object, or list of objects"}}}}}}})
async def add_items(name: str, request: Request) -> JSONResponse:
    svc = services(request)
    model, _ = svc.require_model()
    store = svc.require_store()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        prepared = await _form_items(svc, request)
    elif content_type != "application/json":
        raise InputError("send items as application/json, or images as multipart/form-data uploads")
    else:
        try:
            items = AddItemsRequest.model_validate_json(await request.body()).items
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from exc
        if not items:
            raise InputError("nothing to add: 'items' is empty")
        svc.inputs.check_counts(images=sum(i.image is not None for i in items),
                                texts=sum(i.text is not None for i in items))
        prepared = list(await asyncio.gather(*(_prepare(svc, i, item) for i, item in enumerate(items))))

    svc.inputs.check_request_pixels(CheckedImage(b"", p.pixels) for p in prepared)
    roots = svc.settings.roots

    def existing_space() -> Any:
        try:
            return store.collection(name, create=False).space
        except CollectionNotFound:
            return None

    space = await svc.in_store(existing_space)
    if space is not None:  # before embedding anything: the items could not go in
        _check_space(svc, space, name)
    await _keep_images(svc, prepared)

    def needed() -> list[bool]:
        """Which items are not stored as they are (same content in the same space: nothing to embed)."""
        if space is None:
            return [True] * len(prepared)
        col = store.collection(name, create=False)
        return col.needs_embedding([p.input for p in prepared], **_fields(_with_paths(col, prepared)))  # type: ignore[no-any-return]

    todo = await svc.in_store(needed)
    # Embedded through the shared batcher, off the store thread, which then only writes.
    table = await _embed_prepared(svc, [p for p, embed in zip(prepared, todo) if embed])
    vectors = PrecomputedModel(model, table)

    def add() -> tuple[list[Any], list[dict[str, Any]]]:
        # A collection created here records the first root, so paths under it are stored relative to it.
        col = store.collection(name, vectors, root=roots[0] if roots else None)
        return _add_all(col, list(prepared))

    records, failures = await svc.in_store(add)
    if failures and not any(records):  # nothing went in: the request fails with its first bad item
        raise failures[0]["error"]
    for r in records:
        if r is not None:
            svc.thumbnails.drop(name, r.id)
    count = await svc.in_store(lambda: store.collection(name, create=False).count())
    body = {"collection": name, "items": [_item_out(name, r) if r is not None else None for r in records],
            "count": count, "failures": [{k: v for k, v in f.items() if k != "error"} for f in failures]}
    return JSONResponse(body)


# -- one item ----------------------------------------------------------------------------------------------------


@router.get("/v1/collections/{name}/items/{item_id:path}", response_model=ItemOut, responses=_ERRORS,
            summary="One item (with vector=true, its vector too)")
async def get_item(name: str, item_id: str, request: Request, vector: bool = False) -> JSONResponse:
    svc = services(request)
    col = await _open(svc, name)
    record = await svc.in_store(col.get, item_id, vector=vector)
    return JSONResponse(_item_out(name, record, vector=vector))


@router.get("/v1/collections/{name}/duplicates/{item_id:path}", response_model=DuplicatesResponse, responses=_ERRORS,
            summary="The item's group of duplicates: the same content, or nearly the same vector")
async def duplicates_of(name: str, item_id: str, request: Request,
                        threshold: float = Query(default=DEFAULT_THRESHOLD, gt=0, le=1)) -> JSONResponse:
    svc = services(request)
    col = await _open(svc, name)
    group, similarity = await svc.in_store(col.duplicates_of, item_id, threshold)
    out = None
    if group is not None:
        records = {r.id: r for r in await svc.in_store(col.get_many, list(group.ids))}
        items = [{"id": i, "modality": group.modality, "reference": records[i].reference if i in records else ref,
                  "text": records[i].text if i in records else None, "similarity": similarity.get(i, 0.0),
                  "thumbnail": _thumbnail_url(name, i, group.modality)} for i, ref in zip(group.ids, group.references)]
        items.sort(key=lambda d: (-d["similarity"], d["id"]))
        out = {"kind": group.kind, "modality": group.modality, "similarity": round(group.similarity, 6),
               "items": items}
    return JSONResponse({"collection": name, "id": item_id, "threshold": threshold, "group": out})


@router.delete("/v1/collections/{name}/items/{item_id:path}", responses=_ERRORS, dependencies=[Depends(require_write)],
               summary="Delete one item")
async def delete_item(name: str, item_id: str, request: Request) -> JSONResponse:
    svc = services(request)
    col = await _open(svc, name)
    deleted = await svc.in_store(col.delete, [item_id])
    if not deleted:
        raise ItemNotFound(f"no item {item_id!r} in collection {name!r}")
    svc.thumbnails.drop(name, item_id)
    return JSONResponse({"deleted": item_id, "collection": name})


@router.get("/v1/collections/{name}/thumbnails/{item_id:path}", responses={200: {"content": {"image/jpeg": {}}}, **_ERRORS},
            summary="A JPEG thumbnail of an image or pair item (cached; resolved by id, never by path)")
async def thumbnail(name: str, item_id: str, request: Request,
                    size: int = Query(256, ge=1, le=max(SIZES), description="longest side in pixels")) -> Response:
    svc = services(request)
    col = await _open(svc, name)
    record = await svc.in_store(col.get, item_id)
    if record.modality == "text":
        raise ItemNotFound(f"item {item_id!r} is a text; only image and pair items have thumbnails")
    side = next(s for s in SIZES if s >= size)
    key = (name, item_id, record.content_hash or record.reference, side)
    etag = '"' + (record.content_hash or record.reference).replace("sha256:", "")[:24] + f"-{side}" + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
    if request.headers.get("if-none-match") == etag:
        svc.metrics.thumbnails.labels("not_modified").inc()
        return Response(status_code=304, headers=headers)
    data = svc.thumbnails.get(key)
    if data is None:
        settings = svc.settings

        def make() -> bytes:
            return render_thumbnail(item_image_bytes(settings, col, record.reference), side, settings.limits.max_pixels)

        data = await anyio.to_thread.run_sync(make)
        svc.thumbnails.put(key, data)
        svc.metrics.thumbnails.labels("miss").inc()
    else:
        svc.metrics.thumbnails.labels("hit").inc()
    return Response(data, media_type="image/jpeg", headers=headers)
