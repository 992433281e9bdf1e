"""Micro-batching: items from concurrent requests share one model call, and no request starves the others.

Requests put their items on a queue and await a future. One worker thread
(so the event loop keeps accepting requests while the model runs) keeps the
requests it has taken in; each model call takes their items **in turns**, one
item from each request per round, up to ``max_items`` items and ``max_pixels``
decoded pixels (at least one item, however large). So a request of 32 huge
images is embedded over many calls, and a text from another client, arriving
meanwhile, waits for one call, not for all of them. When the previous call
held several requests (the service is under load), the worker waits up to
``max_wait_ms`` for more; a lone client is never delayed. A call's items are
grouped by kind (texts, images, pairs with a given image weight) by
:func:`~crossmodal.dispatch.iter_inputs`, each group is embedded at once, and
each request gets its own rows back in its own order.

A bad input fails only the request that sent it: the model runs with
``on_error="skip"``, and the failure goes back to its request naming the
position there (``input[2]: ...``); with ``partial=True`` the request gets the
other rows and a failure per bad item instead.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dispatch import iter_inputs
from ..embedder import Model
from ..errors import CrossmodalError, InputError
from ..inputs import Input
from ..preprocessing.texts import Tokens
from .errors import relabel
from .metrics import Metrics
from .settings import BatchingSettings

__all__ = ["EmbedResult", "MicroBatcher"]

log = logging.getLogger("crossmodal.server")

@dataclass
class EmbedResult:
    vectors: np.ndarray  # float32 (n, dim), unit rows, in the request's order (zeros where an item failed)
    tokens: int  # text tokens embedded (for OpenAI's usage field)
    failures: dict[int, InputError] = field(default_factory=dict)  # position -> error (partial=True only)
    truncated: list[bool] = field(default_factory=list)  # per item: its text was cut to the context length


@dataclass
class _Request:
    items: list[Input]
    future: asyncio.Future[EmbedResult]
    loop: asyncio.AbstractEventLoop
    partial: bool = False
    truncate: bool = True  # a text over the context length is cut to fit; False: refused (TextTooLong)
    queued: float = field(default_factory=time.perf_counter)
    # the worker's progress through the items
    taken: int = 0
    vectors: np.ndarray | None = None
    tokens: int = 0
    truncated: list[bool] = field(default_factory=list)
    failures: dict[int, InputError] = field(default_factory=dict)
    started: bool = False
    answered: bool = False  # delivered early (the model failed)

    @property
    def finished(self) -> bool:
        return self.answered or self.taken >= len(self.items) or (bool(self.failures) and not self.partial)


@dataclass
class _Slot:
    """One item of a model call: which request it came from, and its position there."""

    request: _Request
    position: int

    @property
    def item(self) -> Input:
        return self.request.items[self.position]


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

    async def embed(self, items: list[Input], *, partial: bool = False, truncate: bool = True) -> EmbedResult:
        """Vectors for ``items``, in order. A bad item fails the whole call, unless ``partial``: then its row is
        zeros and its error is in ``failures``. ``truncate=False`` refuses a text over the context length."""
        if not items:
            return EmbedResult(np.zeros((0, self.model.dim), dtype=np.float32), 0)
        if self._thread is None:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        request = _Request(items, loop.create_future(), loop, partial, truncate)
        self._queue.put(request)
        return await request.future

    # -- the worker thread -------------------------------------------------------

    def _run(self) -> None:
        active: list[_Request] = []  # taken in, not finished; served in turns
        while True:
            stop = self._take_in(active)
            active = [r for r in active if not r.future.done()]  # clients that went away
            if active:
                slots = self._next_batch(active)
                self._last_batch_requests = len({id(s.request) for s in slots})
                self._process(slots)
                for request in [r for r in active if r.finished and not r.answered]:
                    _deliver(request, _outcome(request))
                active = [r for r in active if not r.finished]
            if stop:
                for request in active:
                    _deliver(request, RuntimeError("the batcher stopped"))
                return

    def _take_in(self, active: list[_Request]) -> bool:
        """Move queued requests into ``active`` (blocking while there is nothing to do); True on stop."""
        waiting = sum(len(r.items) - r.taken for r in active)
        under_load = self._last_batch_requests > 1 or len(active) > 1
        deadline = time.perf_counter() + self.settings.max_wait_ms / 1000.0
        while True:
            try:
                if not active:
                    nxt = self._queue.get()  # idle: wait for work
                else:
                    left = deadline - time.perf_counter()
                    full = waiting >= self.settings.max_items
                    nxt = self._queue.get(timeout=left) if under_load and left > 0 and not full \
                        else self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is _STOP:
                return True
            active.append(nxt)
            waiting += len(nxt.items)

    def _next_batch(self, active: list[_Request]) -> list[_Slot]:
        """Items for one model call: one from each request in turn, within the item and pixel budgets."""
        slots: list[_Slot] = []
        pixels = 0
        while True:
            took = False
            for request in active:
                if request.taken >= len(request.items):
                    continue
                item = request.items[request.taken]
                if slots and (len(slots) >= self.settings.max_items or pixels + item.pixels > self.settings.max_pixels):
                    self._rotate(active, request)
                    return slots
                slots.append(_Slot(request, request.taken))
                request.taken += 1
                pixels += item.pixels
                took = True
            if not took:
                return slots

    @staticmethod
    def _rotate(active: list[_Request], first: _Request) -> None:
        """Start the next call's turns at ``first``, the request whose turn was cut off."""
        i = active.index(first)
        active[:] = active[i:] + active[:i]

    def _process(self, slots: list[_Slot]) -> None:
        started = time.perf_counter()
        requests = list({id(s.request): s.request for s in slots}.values())
        for request in requests:
            if request.vectors is None:
                request.vectors = np.zeros((len(request.items), self.model.dim), dtype=np.float32)
                request.truncated = [False] * len(request.items)
            if not request.started:
                request.started = True
                self.metrics.batch_wait.observe(started - request.queued)
        self.metrics.batch_requests.observe(len(requests))
        by_truncation: dict[bool, list[_Slot]] = defaultdict(list)
        for slot in slots:
            by_truncation[slot.request.truncate].append(slot)
        try:
            for truncate, members in by_truncation.items():
                self._embed(members, truncate)
            with_text = [s for s in slots if s.item.text is not None]
            for slot, tok in zip(with_text, self._tokens([s.item.text for s in with_text])):
                slot.request.tokens += len(tok.ids) if tok is not None else 0
                slot.request.truncated[slot.position] = tok is not None and tok.truncated
        except Exception as exc:  # the model itself failed: every request of the call gets the error
            if not isinstance(exc, CrossmodalError):
                log.exception("batch of %d requests failed", len(requests))
            for request in requests:
                request.answered = True
                _deliver(request, exc)

    def _embed(self, members: list[_Slot], truncate: bool) -> None:
        """Embed the slots' items (grouped by kind by the dispatch) and put each row and failure in its request."""
        seconds: dict[str, float] = defaultdict(float)
        sizes: dict[str, int] = defaultdict(int)
        start = time.perf_counter()
        for batch in iter_inputs(self.model, [s.item for s in members], truncate=truncate, workers=0):
            now = time.perf_counter()
            seconds[batch.kind] += now - start
            sizes[batch.kind] += len(batch.indices) + len(batch.failures)
            for row, index in zip(batch.vectors, batch.indices.tolist()):
                slot = members[index]
                slot.request.vectors[slot.position] = row  # type: ignore[index]
            for failure in batch.failures:
                slot = members[failure.index]
                # A partial caller names its inputs itself; otherwise the error says where it sat in the request.
                error = failure.error if slot.request.partial else relabel(failure.error, f"input[{slot.position}]")
                slot.request.failures.setdefault(slot.position, error)
            start = time.perf_counter()
        for kind, spent in seconds.items():
            self.metrics.inference.labels(kind).observe(spent)
            self.metrics.batch_items.labels(kind).observe(sizes[kind])

    def _tokens(self, texts: list[str | None]) -> list[Tokens | None]:
        """Each text's tokens as embedded by default (for usage, and to say which were cut); None if it failed."""
        counted = self.model.tokenizer.tokenize([t or "" for t in texts])
        return [t if isinstance(t, Tokens) else None for t in counted]


def _outcome(request: _Request) -> EmbedResult | BaseException:
    if request.failures and not request.partial:
        return request.failures[min(request.failures)]
    assert request.vectors is not None
    return EmbedResult(request.vectors, request.tokens, dict(request.failures), list(request.truncated))


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
