"""Health, readiness, metrics, the model list, and the OpenAPI docs (behind the read token when tokens are on)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from ..errors import NotReady
from ..metrics import CONTENT_TYPE_LATEST
from ..responses import JSONResponse
from ..schemas import ModelList
from ..services import services

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", tags=["system"], summary="Liveness: the process answers (never needs a token)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["system"],
            summary="Readiness: the model is loaded and the store is open")
async def readyz(request: Request) -> JSONResponse:
    svc = services(request)
    if not svc.ready:
        if svc.failure:
            raise NotReady(f"the service failed to start ({svc.failure}); see its log")
        raise NotReady("the model is still loading")
    return JSONResponse({"status": "ready", "model": svc.model_id(), "store": svc.store is not None})


@router.get("/metrics", tags=["system"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(services(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models", tags=["embeddings"], response_model=ModelList,
            summary="The served model, under each id it answers to (OpenAI-compatible list)")
async def list_models(request: Request) -> dict[str, object]:
    svc = services(request)
    model, _ = svc.require_model()
    assert svc.names is not None
    # The space as collections record it, but named by the served id: a model directory's path stays here.
    space = {**model.space.to_dict(), "model": svc.model_id()}
    cards = [{"id": name, "object": "model", "created": 0, "owned_by": "crossmodal", "dim": model.dim,
              "mode": model.mode, "runtime": model.runtime, "space": space} for name in svc.names.ids]
    return {"object": "list", "data": cards}


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="crossmodal API")
