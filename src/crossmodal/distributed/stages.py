"""The three stages of a distributed ingest, as plain functions and classes over Arrow batches.

Ray Data runs them (see :mod:`~crossmodal.distributed.ray_ingest`), but
nothing here imports Ray, so each stage is tested on its own:

1. :func:`prepare` (CPU tasks): read each image (file or URL), hash it, decode
   and resize it for the model (the same ``prepare_image`` single-machine
   ingest uses), and ship the uint8 pixels on;
2. :class:`Embedder` (model actors, one model load each, on a GPU when there
   is one): the model's own ``embed_images`` / ``embed_texts`` /
   ``embed_pairs`` on those pixels and texts, so vectors are the ones the
   single-machine path computes;
3. :class:`Writer` (writer actors): upserts by id into the server store, in
   batches; retried batches rewrite the same ids, so nothing is duplicated.

Failures never stop a batch: a row carries its ``error`` to the end, where
the driver reports it.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np

from ..dispatch import embed_inputs
from ..errors import CrossmodalError, InputError
from ..identity import content_hash, hash_bytes
from ..inputs import Input
from ..loader import LoadOptions
from ..models.spec import ImagePreprocess
from ..pipeline import prepare_image

__all__ = ["Embedder", "Writer", "prepare"]

FETCH_TIMEOUT_S = 30


def _read(location: str) -> bytes:
    if location.startswith(("http://", "https://")):
        with urllib.request.urlopen(location, timeout=FETCH_TIMEOUT_S) as response:  # http(s) only
            return response.read()
    with open(location.removeprefix("file://"), "rb") as fh:
        return fh.read()


def _prepare_one(location: str, caption_key: str, text_hash: str, cfg: ImagePreprocess, max_pixels: int | None,
                 draft: bool) -> tuple[bytes | None, str, str, str]:
    """(pixels, shape, content hash, error) of one row."""
    if not location:  # a text: nothing to read
        return None, "", text_hash, ""
    try:
        data = _read(location)
    except (OSError, ValueError) as exc:
        return None, "", "", f"cannot read: {exc}"
    image_hash = hash_bytes(data)
    _, prepared = prepare_image(data, cfg, max_pixels, draft)
    if isinstance(prepared, InputError):
        return None, "", image_hash, f"{location}: {prepared}"
    arr = np.ascontiguousarray(prepared, dtype=np.uint8)
    full_hash = content_hash("pair" if caption_key else "image", text=caption_key, image_hash=image_hash)
    return arr.tobytes(), ",".join(map(str, arr.shape)), full_hash, ""


def prepare(batch: Any, cfg: ImagePreprocess, max_pixels: int | None, draft: bool) -> Any:
    """Add ``pixels`` (uint8 H x W x 3, as bytes), ``shape``, the content hash and ``error`` to a batch of rows."""
    import pyarrow as pa

    rows = batch.to_pylist()
    for row in rows:
        row["pixels"], row["shape"], row["content_hash"], row["error"] = _prepare_one(
            row["location"], row["caption_key"], row["content_hash"], cfg, max_pixels, draft)
    return pa.Table.from_pylist(rows, schema=_schema(batch.schema, pixels=True))


def _schema(base: Any, *, pixels: bool = False, vector: bool = False) -> Any:
    """The batch's schema plus the columns a stage adds (explicit, so an all-text batch still has them)."""
    import pyarrow as pa

    fields = [f for f in base if f.name not in ("pixels", "shape", "error", "vector")]
    fields.append(pa.field("error", pa.string()))
    if pixels:
        fields += [pa.field("pixels", pa.binary()), pa.field("shape", pa.string())]
    if vector:
        fields.append(pa.field("vector", pa.binary()))
    return pa.schema(fields)


def _array(data: bytes, shape: str) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(tuple(int(s) for s in shape.split(",")))


class Embedder:
    """A model actor: loads the model once, then embeds batch after batch."""

    def __init__(self, model: str, image_weight: float | None = None, load: LoadOptions | None = None) -> None:
        from ..loader import load_model

        self.model = load_model(model, options=load)
        self.image_weight = image_weight

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist()
        positions, inputs = [], []
        for i, row in enumerate(rows):
            row["vector"] = None
            if not row["error"]:
                image = _array(row["pixels"], row["shape"]) if row["modality"] != "text" else None
                positions.append(i)
                inputs.append(Input(row["modality"], text=row["text"], image=image,
                                    image_weight=self.image_weight if row["modality"] == "pair" else None))
        if inputs:
            result = embed_inputs(self.model, inputs, on_error="skip", batch_size=len(inputs), workers=0)
            for position, vec in zip(result.indices.tolist(), result.vectors):
                rows[positions[position]]["vector"] = np.asarray(vec, dtype=np.float32).tobytes()
            for failure in result.failures:
                rows[positions[failure.index]]["error"] = str(failure.error)
        for row in rows:
            row.pop("pixels", None), row.pop("shape", None)
        return pa.Table.from_pylist(rows, schema=_schema(batch.schema, vector=True))


class Writer:
    """A writer actor: one store connection, upserts each batch (ids make retries harmless)."""

    def __init__(self, store: str, collection: str, store_options: dict[str, Any] | None = None) -> None:
        from ..store import open_store

        self.store = open_store(store, **(store_options or {}))
        self.collection = self.store.collection(collection)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from ..stores.base import Record

        records, existed, failures = [], [], []
        for row in batch.to_pylist():
            if row["error"] or row["vector"] is None:
                failures.append([row["location"] or row["reference"], row["error"] or "not embedded"])
                continue
            records.append(Record(id=row["id"], modality=row["modality"], reference=row["reference"],
                                  vector=np.frombuffer(row["vector"], dtype=np.float32), text=row["text"],
                                  content_hash=row["content_hash"], source=row["source"], stamp=row["stamp"],
                                  metadata=json.loads(row["metadata"])))
            existed.append(bool(row["existed"]))
        try:
            self.collection.upsert(records)
            written = existed
        except InputError:  # one bad record must not sink the batch: write them one by one
            written = []
            for rec, flag in zip(records, existed):
                try:
                    self.collection.upsert([rec])
                except CrossmodalError as exc:
                    failures.append([rec.reference, str(exc)])
                    continue
                written.append(flag)
        updated = sum(written)
        return pa.table({"added": [len(written) - updated], "updated": [updated],
                         "failures": [json.dumps(failures, ensure_ascii=False)]})
