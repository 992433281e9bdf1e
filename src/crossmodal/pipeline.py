"""Decoding and resizing images, inline or on worker processes, in input order.

:class:`ImagePipeline` maps image inputs to uint8 (H, W, 3) arrays already
resized and cropped for the model (or to the :class:`InputError` an input
raised). With ``workers > 0`` the work runs on a process pool while the caller
runs inference, so decoding overlaps the model; at most ``prefetch`` inputs
are in flight, so a generator of 100k paths is never read ahead further.
The last step (the lookup-table normalize) runs in the caller, writing
straight into the batch tensor the runtime receives.
"""

from __future__ import annotations

import collections
import multiprocessing
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

from .errors import ImageDecodeError, InputError
from .models.spec import ImagePreprocess
from .preprocessing.images import ImageTransform, describe_input, load_image

__all__ = ["ImagePipeline", "prepare_image"]

Prepared = tuple[str, "np.ndarray | InputError"]


def prepare_image(item: Any, cfg: ImagePreprocess, max_pixels: int | None, draft: bool) -> Prepared:
    """Decode and resize one input; errors are returned, not raised, so a batch can go on."""
    name = describe_input(item)
    try:
        transform = _transform(cfg)
        draft_size = _draft_size(cfg) if draft else None
        image = load_image(item, max_pixels=max_pixels, draft=draft_size)
        return name, np.ascontiguousarray(transform.resize(image))
    except InputError as exc:
        return name, exc
    except Exception as exc:  # a decoder bug must name the input, not kill the batch
        return name, ImageDecodeError(f"cannot decode image {name}: {type(exc).__name__}: {exc}", input=name)


_TRANSFORMS: dict[ImagePreprocess, ImageTransform] = {}


def _transform(cfg: ImagePreprocess) -> ImageTransform:
    # A per-process memo of immutable lookup tables; it holds no state that changes a result.
    transform = _TRANSFORMS.get(cfg)
    if transform is None:
        transform = _TRANSFORMS[cfg] = ImageTransform(cfg)
    return transform


def _draft_size(cfg: ImagePreprocess) -> tuple[int, int]:
    h, w = cfg.size
    return (w, h)


def _chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _prepare_chunk(items: list[Any], cfg: ImagePreprocess, max_pixels: int | None, draft: bool) -> list[Prepared]:
    return [prepare_image(item, cfg, max_pixels, draft) for item in items]


class ImagePipeline:
    """Order-preserving image preparation; use as a context manager."""

    def __init__(
        self,
        cfg: ImagePreprocess,
        *,
        workers: int | None = 0,
        max_pixels: int | None = None,
        draft: bool = False,
        prefetch: int = 64,
        chunk: int = 4,
    ) -> None:
        self.cfg = cfg
        self.workers = workers or 0
        self.max_pixels = max_pixels
        self.draft = draft
        self.prefetch = max(prefetch, chunk)
        self.chunk = chunk
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ImagePipeline:
        if self.workers > 0:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, items: Iterable[Any]) -> Iterator[Prepared]:
        if self._pool is None:
            for item in items:
                yield prepare_image(item, self.cfg, self.max_pixels, self.draft)
            return
        pending: collections.deque[Future[list[Prepared]]] = collections.deque()
        limit = max(1, self.prefetch // self.chunk)
        for chunk in _chunked(items, self.chunk):
            pending.append(self._pool.submit(_prepare_chunk, chunk, self.cfg, self.max_pixels, self.draft))
            while len(pending) >= limit:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
