"""The request body cap, enforced before any route parses a byte.

A body that declares a ``Content-Length`` over the cap is refused at once; a
chunked one is counted as it arrives and refused the moment it passes the
cap. Either way the client gets a 413 with ``error.code = "limit_exceeded"``.
The (capped) body is then replayed to the app, which would buffer it anyway.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import LimitExceeded
from .errors import error_response

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, f"the request body has {size:,} bytes")
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_bytes:
                await self._refuse(scope, receive, send, "the request body is larger")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, what: str) -> None:
        exc = LimitExceeded(f"{what}, over the limit of {self.max_bytes:,} bytes per request")
        response = error_response(exc, None)
        response.headers["connection"] = "close"
        await response(scope, receive, send)
