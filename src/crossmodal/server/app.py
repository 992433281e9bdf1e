"""``create_app(settings)``: one FastAPI app, with everything it uses hanging off ``app.state`` (no globals).

Layers, outermost first: metrics (counts and times every request), CORS (only
when origins are configured), the guard (host, origin, token), the body cap (413 before a
route parses anything), then FastAPI's routing with the error handlers of
:mod:`.errors`. Routes: :mod:`.routes.embeddings`,
:mod:`.routes.collections`, :mod:`.routes.system`, :mod:`.routes.page`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from .. import __version__
from ..embedder import Model
from .body import BodyLimitMiddleware
from .errors import install_error_handlers
from .fetch import Resolver
from .metrics import MetricsMiddleware
from .responses import JSONResponse
from .routes import collections, embeddings, page, system
from .security import GuardMiddleware
from .services import Services
from .settings import ServerSettings

__all__ = ["create_app"]


def create_app(settings: ServerSettings, *, model: Model | None = None, store: Any = None,
               resolver: Resolver | None = None) -> FastAPI:
    """Build the service. ``model`` and ``store``, when given, are used instead of loading them from
    ``settings`` (tests, embedding the service in another program); ``resolver`` replaces DNS for URL fetches.
    """
    svc = Services(settings, model=model, store=store, resolver=resolver)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            await svc.stop()

    app = FastAPI(
        title="crossmodal",
        version=__version__,
        description="Embeddings (OpenAI-compatible, with images and pairs) and cross-modal search over collections.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=JSONResponse,
    )
    app.state.settings = settings
    app.state.services = svc
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(embeddings.router)
    app.include_router(collections.router)
    app.include_router(page.router)
    app.mount("/static", page.static_files(), name="static")
    # add_middleware wraps: the last added runs first (metrics, CORS, auth, body cap, then the routes).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(GuardMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(MetricsMiddleware, metrics=svc.metrics)
    return app
