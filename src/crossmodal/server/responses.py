"""The service's JSON responses: valid UTF-8 whatever the stored names hold (see :mod:`crossmodal.jsontext`)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse as _FastAPIJSONResponse

from ..jsontext import dumps

__all__ = ["JSONResponse"]


class JSONResponse(_FastAPIJSONResponse):
    """Starlette's JSONResponse, but a reference to a file whose name is not UTF-8 cannot make it fail."""

    def render(self, content: Any) -> bytes:
        return dumps(content, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")
