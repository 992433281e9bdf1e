"""``POST /v1/embeddings``: OpenAI's embeddings API, widened to images and image+text pairs."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request

from ...errors import ConfigError, InputError, UnsupportedInput
from ...inputs import Input
from ...models.spec import OUTPUTS
from ..inputs import InputReader
from ..responses import JSONResponse
from ..schemas import EmbeddingRequest, EmbeddingResponse, ErrorResponse, ImagePart, TextPart
from ..services import services

__all__ = ["encode_vectors", "extra_outputs", "parse_inputs", "router"]

router = APIRouter(tags=["embeddings"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (401, 404, 413, 422, 503)}


def _image_url(part: ImagePart) -> str:
    return part.image_url if isinstance(part.image_url, str) else part.image_url.url


async def parse_inputs(body: EmbeddingRequest, reader: InputReader) -> list[Input]:
    """The request's items, each checked against the limits; images read (or fetched) concurrently."""
    raw = [body.input] if isinstance(body.input, str) else list(body.input)
    if not raw:
        raise InputError("input is empty: give a string or a list of items")
    specs: list[tuple[str | None, str | None]] = []  # (text, image url) per item
    for i, entry in enumerate(raw):
        name = f"input[{i}]"
        parts = entry if isinstance(entry, list) else [entry]
        if parts and all(isinstance(p, int) for p in parts):
            raise InputError(f"{name}: token arrays are not supported; send the text itself", input=name)
        texts = [p if isinstance(p, str) else p.text for p in parts if isinstance(p, (str, TextPart))]
        images = [_image_url(p) for p in parts if isinstance(p, ImagePart)]
        if len(texts) > 1 or len(images) > 1 or not (texts or images):
            raise InputError(f"{name}: an item is a text, an image, or one image part plus one text part (a pair)",
                             input=name)
        specs.append((texts[0] if texts else None, images[0] if images else None))
    reader.check_counts(images=sum(img is not None for _, img in specs), texts=sum(t is not None for t, _ in specs))
    for i, (text, _) in enumerate(specs):
        if text is not None:
            reader.text(text, f"input[{i}]")
    pending = {i: reader.image_url(url, f"input[{i}]") for i, (_, url) in enumerate(specs) if url is not None}
    loaded = dict(zip(pending, await asyncio.gather(*pending.values()))) if pending else {}
    reader.check_request_pixels(loaded.values())
    items = []
    for i, (text, _) in enumerate(specs):
        image = loaded.get(i)
        items.append(Input.of(text=text, image=image.data if image else None, image_weight=body.image_weight,
                              pixels=image.pixels if image else 0))
    return items


def encode_vectors(vectors: np.ndarray, encoding: str) -> list[Any]:
    if encoding == "base64":
        little = vectors.astype("<f4", copy=False)
        return [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    return vectors.tolist()


def extra_outputs(body: EmbeddingRequest, model: Any, model_id: str) -> tuple[str, ...]:
    """The outputs ``crossmodal.outputs`` asks for beyond the dense embedding, checked against the model."""
    asked = list(dict.fromkeys(body.crossmodal.outputs)) if body.crossmodal is not None else []
    unknown = [o for o in asked if o not in OUTPUTS]
    if unknown:
        raise ConfigError(f"crossmodal.outputs: unknown output {unknown[0]!r}; the outputs are "
                          f"{', '.join(OUTPUTS)}")
    extra = tuple(o for o in asked if o != "dense")
    missing = [o for o in extra if not model.capabilities.gives(o)]
    if missing:
        raise UnsupportedInput(f"crossmodal.outputs: model {model_id!r} gives no {' or '.join(missing)} output; it gives "
                               f"{', '.join(model.capabilities.outputs)}")
    return extra


@router.post("/v1/embeddings", response_model=EmbeddingResponse, responses=_ERRORS,
             summary="Embed texts, images and image+text pairs (OpenAI-compatible)")
async def create_embeddings(body: EmbeddingRequest, request: Request) -> JSONResponse:
    svc = services(request)
    model_id = svc.model_id(body.model)
    model, batcher = svc.require_model()
    if body.dimensions is not None and body.dimensions != model.dim:
        raise ConfigError(f"dimensions={body.dimensions} is not available: {model_id} makes vectors of dim {model.dim}")
    outputs = extra_outputs(body, model, model_id)
    items = await parse_inputs(body, svc.inputs)
    for i, item in enumerate(items):
        if outputs and item.kind != "text":
            raise ConfigError(f"input[{i}]: the {' and '.join(outputs)} output{'s are' if len(outputs) > 1 else ' is'} "
                              f"given for texts only, and this item is an "
                              f"{'image+text pair' if item.kind == 'pair' else 'image'}")
    result = await batcher.embed(items, truncate=body.truncate)
    data = [{"object": "embedding", "index": i, "embedding": e, "truncated": cut}
            for i, (e, cut) in enumerate(zip(encode_vectors(result.vectors, body.encoding_format), result.truncated))]
    if outputs:
        texts = [str(item.text) for item in items]
        extra = await asyncio.to_thread(model.embed_text_outputs, texts, outputs=outputs, truncate=body.truncate)
        for i, entry in enumerate(data):
            if extra.sparse is not None:
                entry["sparse"] = extra.sparse[i].to_qdrant()  # {"indices": [...], "values": [...]}
            if extra.multivector is not None:
                entry["multivector"] = np.asarray(extra.multivector[i], dtype=np.float32).tolist()
    usage = {"prompt_tokens": result.tokens, "total_tokens": result.tokens}
    return JSONResponse({"object": "list", "data": data, "model": model_id, "usage": usage})
