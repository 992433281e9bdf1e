"""Services: what one app instance holds (model, batcher, store, fetcher, caches), on ``app.state``.

The model loads on a background thread when the app starts, so ``/healthz``
answers at once and ``/readyz`` says when the service can embed; a model or
store handed to :func:`~crossmodal.server.create_app` is used as is.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import Request

from ..embedder import Model
from ..errors import CrossmodalError, ModelNotFound
from .batcher import MicroBatcher
from .errors import NotReady
from .fetch import Fetcher, Resolver
from .inputs import InputReader
from .metrics import Metrics
from .naming import ServedNames, public_model_name
from .settings import ServerSettings
from .thumbnails import ThumbnailCache

__all__ = ["Services", "services"]

log = logging.getLogger("crossmodal.server")

T = TypeVar("T")


class Services:
    def __init__(self, settings: ServerSettings, *, model: Model | None = None, store: Any = None,
                 resolver: Resolver | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.fetcher = Fetcher(settings.fetch, settings.limits.max_image_bytes, resolver=resolver)
        self.inputs = InputReader(settings, self.fetcher)
        self.thumbnails = ThumbnailCache(settings.thumbnail_cache_items)
        self.model: Model | None = model
        self.store: Any = store
        self.batcher: MicroBatcher | None = None
        self.names: ServedNames | None = None  # set once the model is loaded
        self.failure: str | None = None  # why loading failed (logged in full; shown as a code)
        self._own_store = store is None
        self._loader: threading.Thread | None = None
        self._lock = threading.Lock()
        # Every store call runs on this one thread: stores need not be thread-safe (SQLite connections are
        # bound to their thread), and the event loop never blocks on disk or a database.
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crossmodal-store")

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        if self.model is not None and self.store is not None:
            self._ready_up()
        else:
            self._loader = threading.Thread(target=self._load, name="crossmodal-loader", daemon=True)
            self._loader.start()

    def _load(self) -> None:
        try:
            if self.model is None:
                from ..loader import load_model

                s = self.settings
                self.model = load_model(s.model, runtime=s.runtime, mode=s.mode,  # type: ignore[arg-type]
                                        device=s.device, threads=s.threads, cache_dir=s.cache_dir,
                                        hub_cache=s.hub_cache, offline=s.offline, hub_endpoint=s.hub_endpoint)
            if self.store is None and self.settings.store:
                self.store = self._store_thread.submit(_open_store, self.settings.store).result()
            self._ready_up()
        except CrossmodalError as exc:
            log.error("the service cannot start: %s", exc)
            self.failure = exc.code
        except Exception:
            log.exception("the service cannot start")
            self.failure = "internal"

    def _ready_up(self) -> None:
        assert self.model is not None
        self.names = ServedNames.of(self.model, self.settings.served_model_names)
        batcher = MicroBatcher(self.model, self.settings.batching, self.metrics)
        batcher.start()
        with self._lock:
            self.batcher = batcher

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.join(timeout=60)
        with self._lock:
            batcher, self.batcher = self.batcher, None
        if batcher is not None:
            batcher.stop()
        await self.fetcher.aclose()
        if self._own_store and self.store is not None and hasattr(self.store, "close"):
            self._store_thread.submit(self.store.close).result()
        self._store_thread.shutdown(wait=True)

    # -- access ---------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    def require_model(self) -> tuple[Model, MicroBatcher]:
        batcher = self.batcher
        if batcher is None or self.model is None:
            if self.failure:
                raise NotReady(f"the service failed to start ({self.failure}); see its log")
            raise NotReady("the model is still loading; try again shortly (GET /readyz says when)")
        return self.model, batcher

    def require_store(self) -> Any:
        self.require_model()
        if self.store is None:
            raise NotReady("this server has no store (start it with --store URI)")
        return self.store

    async def in_store(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the store's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._store_thread, functools.partial(fn, *args, **kwargs))

    def model_id(self, requested: str | None = None) -> str:
        """The id to answer with: ``requested`` if the served model answers to it (else
        :class:`ModelNotFound`), or the model's first id."""
        self.require_model()
        names = self.names
        assert names is not None
        if requested is None:
            return names.primary
        if requested not in names.accepted:
            served = ", ".join(repr(n) for n in names.ids)
            raise ModelNotFound(f"model {requested!r} is not served here; this server serves {served} (GET /v1/models)")
        return requested

    def model_name_of(self, space: Any) -> str:
        """What a client is shown as the model of a space: the served id for the served model's space."""
        model, _ = self.require_model()
        if (space.fingerprint, space.dim) == (model.space.fingerprint, model.space.dim) and self.names is not None:
            return self.names.primary
        return public_model_name(space.model)

    def hidden_paths(self) -> tuple[str, ...]:
        """Server paths the model reveals (its directory), kept out of every error message."""
        return self.names.hidden_paths if self.names is not None else ()


def _open_store(uri: str) -> Any:
    from ..store import open_store

    return open_store(uri)


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]
