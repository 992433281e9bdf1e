"""The search page: a static shell (HTML, JS, CSS; no data, no build step) that calls the JSON API.

The shell is the one thing besides ``/healthz`` served without a token:
browsers cannot attach ``Authorization`` to a page load, and the shell holds
nothing but the code; the page asks for the token and sends it with every
API call (thumbnails included, fetched as blobs).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC", "SECURITY_HEADERS", "router", "static_files"]

STATIC = Path(__file__).resolve().parents[1] / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=SECURITY_HEADERS)


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC, follow_symlink=False)
