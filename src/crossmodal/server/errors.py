"""The one place where exceptions become HTTP statuses and JSON error bodies.

Every error response has the shape OpenAI clients understand::

    {"error": {"message": "...", "type": "invalid_request_error", "code": "image_decode", "param": null}}

``code`` is the stable ``code`` of the crossmodal exception class (see
:mod:`crossmodal.errors`), or one of ``invalid_request`` (the request does
not match the schema), ``not_found``, ``method_not_allowed``, ``not_ready``
and ``internal``. Messages never hold a stack trace, and server-side
paths (roots, the store, caches, the model's directory, the home folder) are
replaced by ``<server path>``; errors the client cannot fix (store and model failures, bugs) are
logged in full and answered with a generic message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    AccessDenied,
    CollectionExists,
    CollectionNotFound,
    ConfigError,
    CrossmodalError,
    ImageTooLarge,
    InputError,
    ItemNotFound,
    LimitExceeded,
    ModelError,
    ModelNotFound,
    SpaceMismatch,
    StoreError,
    StoreUnavailable,
    TextTooLong,
    Unauthorized,
)
from .responses import JSONResponse

__all__ = ["HTTP_STATUSES", "NotReady", "error_body", "error_response", "install_error_handlers", "relabel",
           "status_for"]

log = logging.getLogger("crossmodal.server")


class NotReady(CrossmodalError):
    """The model or the store is still loading (or failed to load): try again later."""

    code = "not_ready"


#: exception class -> HTTP status; the first match wins, so subclasses come first
HTTP_STATUSES: list[tuple[type[BaseException], int]] = [
    (Unauthorized, 401),
    (AccessDenied, 403),
    (LimitExceeded, 413),
    (ImageTooLarge, 413),
    (TextTooLong, 422),
    (InputError, 422),
    (ConfigError, 422),  # a bad option in a request (unknown modality, bad filter)
    (SpaceMismatch, 422),
    (CollectionNotFound, 404),
    (ItemNotFound, 404),
    (ModelNotFound, 404),
    (CollectionExists, 409),
    (StoreUnavailable, 503),
    (NotReady, 503),
    (StoreError, 500),
    (ModelError, 500),
    (CrossmodalError, 500),
]

_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 409: "conflict_error",
          413: "invalid_request_error", 422: "invalid_request_error", 503: "service_unavailable"}

# Statuses where the message is the client's own business; others get a generic message.
_CLIENT_FIXABLE = {401, 403, 404, 409, 413, 422}


def relabel(error: InputError, where: str) -> InputError:
    """The same error (same class and code), its message prefixed with where the input sat in the request."""
    fresh = type(error).__new__(type(error))
    fresh.__dict__.update(error.__dict__)
    fresh.args = (f"{where}: {error.args[0] if error.args else error}",)
    return fresh


def status_for(exc: BaseException) -> int:
    for cls, status in HTTP_STATUSES:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "code": code, "param": param}}


def _scrub(message: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s and len(s) > 1}, key=len, reverse=True):
        message = message.replace(secret, "<server path>")
    return message


def _secret_paths(settings: Any, hidden: Iterable[str] = ()) -> list[str]:
    paths: list[str] = [os.path.expanduser("~"), *hidden]
    if settings is not None:
        paths += [str(r) for r in settings.roots]
        paths += [str(p) for p in (settings.store, settings.cache_dir, settings.upload_dir) if p]
        paths += [os.path.realpath(str(p)) for p in (settings.store, settings.upload_dir) if p and "://" not in str(p)]
        if settings.model and os.path.isabs(os.path.expanduser(settings.model)):  # a model directory
            paths += [settings.model, os.path.realpath(os.path.expanduser(settings.model))]
    return [p for p in paths if p not in ("/", "")]


def _hidden(request: Request) -> tuple[str, ...]:
    svc = getattr(request.app.state, "services", None)
    return svc.hidden_paths() if svc is not None else ()


def _respond(request: Request, status: int, code: str, message: str, param: str | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    message = _scrub(message, _secret_paths(getattr(request.app.state, "settings", None), _hidden(request)))
    return JSONResponse(error_body(status, code, message, param), status_code=status, headers=headers)


def error_response(exc: CrossmodalError, settings: Any, where: str = "", hidden: Iterable[str] = ()) -> JSONResponse:
    """The JSON response for a crossmodal error (also used by the middlewares, outside the routes);
    ``hidden``: more server paths to keep out of the message (the model's directory)."""
    status = status_for(exc)
    if status in _CLIENT_FIXABLE or isinstance(exc, NotReady):
        message = str(exc)
    else:
        log.error("%s failed: %s: %s", where or "request", type(exc).__name__, exc)
        message = f"the server failed ({exc.code}); see its log"
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    message = _scrub(message, _secret_paths(settings, hidden))
    return JSONResponse(error_body(status, exc.code, message), status_code=status, headers=headers)


def crossmodal_error(request: Request, exc: CrossmodalError) -> JSONResponse:
    return error_response(exc, getattr(request.app.state, "settings", None), f"{request.method} {request.url.path}",
                          _hidden(request))


_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def _is_branch_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part in _TYPE_TAGS)


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    # Drop pydantic's union-branch tags ("str", "list[...]", "function-after[...]") from the location.
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and not _is_branch_tag(p)]
    where = ".".join(loc) or "body"
    message = f"invalid request: {where}: {first.get('msg', 'does not match the schema')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return _respond(request, 422, "invalid_request", message, where)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "limit_exceeded"}


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    return _respond(request, exc.status_code, code, detail, headers=getattr(exc, "headers", None))


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed with an unexpected error", request.method, request.url.path, exc_info=exc)
    return _respond(request, 500, "internal", "internal server error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CrossmodalError, crossmodal_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
