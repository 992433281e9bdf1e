"""Micro-batching: items from concurrent requests share one model call.

Requests put their items on a queue and await a future. One worker thread
(so the event loop keeps accepting requests while the model runs) takes the
first waiting request, adds whatever else is queued up to ``max_items``
items, and, when the previous batch held several requests (the service is
under load), waits up to ``max_wait_ms`` for more; a lone client is never
delayed. The batch is grouped by kind (texts, images, pairs with a given
image weight), each group is embedded in one call, and each request gets its
own rows back in its own order.

A bad input fails only the request that sent it: the model runs with
``on_error="skip"``, and the failure goes back to its request naming the
position there (``input[2]: ...``).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..embedder import Model
from ..errors import CrossmodalError, InputError
from ..preprocessing.texts import Tokens
from .errors import relabel
from .metrics import Metrics
from .settings import BatchingSettings

__all__ = ["EmbedResult", "Item", "MicroBatcher"]

log = logging.getLogger("crossmodal.server")

Kind = Literal["text", "image", "pair"]


@dataclass(frozen=True)
class Item:
    """One thing to embed: a text, an image (encoded bytes), or both (a pair)."""

    kind: Kind
    text: str | None = None
    image: bytes | None = None
    image_weight: float | None = None  # pairs only; None: the model's fusion weight
    truncate: bool = True  # a text over the context length is cut to fit; False: refused (TextTooLong)

    @classmethod
    def of(cls, text: str | None = None, image: bytes | None = None, image_weight: float | None = None,
           truncate: bool = True) -> Item:
        if text is not None and image is not None:
            return cls("pair", text, image, image_weight, truncate)
        if image is not None:
            return cls("image", image=image)
        if text is not None:
            return cls("text", text=text, truncate=truncate)
        raise InputError("an item needs a text, an image, or both")


@dataclass
class EmbedResult:
    vectors: np.ndarray  # float32 (n, dim), unit rows, in the request's order
    tokens: int  # text tokens embedded (for OpenAI's usage field)
    truncated: list[bool] = field(default_factory=list)  # per item: its text was cut to the context length


@dataclass
class _Request:
    items: list[Item]
    future: asyncio.Future[EmbedResult]
    loop: asyncio.AbstractEventLoop
    queued: float = field(default_factory=time.perf_counter)


_STOP = object()


class MicroBatcher:
    """Shares one model among concurrent requests; ``start()`` once, ``await embed(items)`` many times."""

    def __init__(self, model: Model, settings: BatchingSettings, metrics: Metrics) -> None:
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._last_batch_requests = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crossmodal-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    async def embed(self, items: list[Item]) -> EmbedResult:
        if not items:
            return EmbedResult(np.zeros((0, self.model.dim), dtype=np.float32), 0)
        if self._thread is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        request = _Request(items, loop.create_future(), loop)
        self._queue.put(request)
        return await request.future

    # -- the worker thread -------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._gather(first)
            self._last_batch_requests = len(batch)
            self._process(batch)
            if stop:
                return

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, size = [first], len(first.items)
        under_load = self._last_batch_requests > 1
        deadline = time.perf_counter() + self.settings.max_wait_ms / 1000.0
        while size < self.settings.max_items:
            try:
                left = deadline - time.perf_counter()
                nxt = self._queue.get(timeout=left) if under_load and left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
            size += len(nxt.items)
        return batch, False

    def _process(self, batch: list[_Request]) -> None:
        started = time.perf_counter()
        for request in batch:
            self.metrics.batch_wait.observe(started - request.queued)
        self.metrics.batch_requests.observe(len(batch))
        flat = [(r, i, item) for r, request in enumerate(batch) for i, item in enumerate(request.items)]
        groups: dict[tuple[str, float | None, bool], list[int]] = defaultdict(list)
        for j, (_, _, item) in enumerate(flat):
            groups[(item.kind, item.image_weight, item.truncate)].append(j)
        vectors = np.zeros((len(flat), self.model.dim), dtype=np.float32)
        errors: dict[int, BaseException] = {}
        tokens = [0] * len(batch)
        truncated = [False] * len(flat)
        try:
            for (kind, weight, truncate), members in groups.items():
                self._embed_group(kind, weight, truncate, [flat[j][2] for j in members], members, vectors, errors,
                                  flat)
                if kind in ("text", "pair"):
                    for j, tok in zip(members, self._tokens([flat[j][2].text for j in members])):
                        tokens[flat[j][0]] += len(tok.ids) if tok is not None else 0
                        truncated[j] = tok is not None and tok.truncated
        except Exception as exc:  # the model itself failed: every request of the batch gets the error
            if not isinstance(exc, CrossmodalError):
                log.exception("batch of %d requests failed", len(batch))
            for request in batch:
                _deliver(request, exc)
            return
        offsets = np.cumsum([0] + [len(r.items) for r in batch])
        for r, request in enumerate(batch):
            if r in errors:
                _deliver(request, errors[r])
            else:
                _deliver(request, EmbedResult(vectors[offsets[r] : offsets[r + 1]].copy(), tokens[r],
                                              truncated[offsets[r] : offsets[r + 1]]))

    def _embed_group(self, kind: str, weight: float | None, truncate: bool, items: list[Item], members: list[int],
                     out: np.ndarray, errors: dict[int, BaseException], flat: list[Any]) -> None:
        start = time.perf_counter()
        model = self.model
        texts = [it.text or "" for it in items]
        images = [it.image or b"" for it in items]
        if kind == "text":
            result = model.embed_texts(texts, on_error="skip", truncate=truncate)
        elif kind == "image":
            result = model.embed_images(images, on_error="skip", workers=0)
        else:
            result = model.embed_pairs(images, texts, image_weight=weight, on_error="skip", workers=0, truncate=truncate)
        self.metrics.inference.labels(kind).observe(time.perf_counter() - start)
        self.metrics.batch_items.labels(kind).observe(len(items))
        rows = np.asarray(members)[result.indices]
        out[rows] = result.vectors
        for failure in result.failures:
            r, position, _ = flat[members[failure.index]]
            if r not in errors:
                errors[r] = relabel(failure.error, f"input[{position}]")

    def _tokens(self, texts: list[str | None]) -> list[Tokens | None]:
        """Each text's tokens as embedded by default (for usage, and to say which were cut); None if it failed."""
        counted = self.model.tokenizer.tokenize([t or "" for t in texts])
        return [t if isinstance(t, Tokens) else None for t in counted]


def _deliver(request: _Request, outcome: EmbedResult | BaseException) -> None:
    def settle() -> None:
        if request.future.done():  # the client went away
            return
        if isinstance(outcome, BaseException):
            request.future.set_exception(outcome)
        else:
            request.future.set_result(outcome)

    try:
        request.loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed
        pass
