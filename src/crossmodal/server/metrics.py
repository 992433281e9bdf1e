"""Prometheus metrics, in a registry that belongs to one app (never the process-global one).

``crossmodal_http_requests_total{method, route, status}``, a latency histogram
``crossmodal_http_request_duration_seconds{method, route}``, and for the
model: items per model call (``crossmodal_batch_items{kind}``), requests
merged into one batch (``crossmodal_batch_requests``), time a request waited
for its batch (``crossmodal_batch_wait_seconds``) and model time
(``crossmodal_inference_seconds{kind}``). ``route`` is the route's template
(``/v1/collections/{name}/search``), so ids never multiply the series.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "MetricsMiddleware"]

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("crossmodal_http_requests", "HTTP requests served", ["method", "route", "status"], registry=r)
        self.latency = Histogram("crossmodal_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], buckets=_LATENCY, registry=r)
        self.batch_items = Histogram("crossmodal_batch_items", "Items per model call", ["kind"], buckets=_SIZES, registry=r)
        self.batch_requests = Histogram("crossmodal_batch_requests", "Requests merged into one batch",
                                        buckets=_SIZES, registry=r)
        self.batch_wait = Histogram("crossmodal_batch_wait_seconds", "Time a request waited for its batch to start",
                                    buckets=_LATENCY, registry=r)
        self.inference = Histogram("crossmodal_inference_seconds", "Model time per call", ["kind"],
                                   buckets=_LATENCY, registry=r)
        self.thumbnails = Counter("crossmodal_thumbnails", "Thumbnail requests by cache outcome", ["outcome"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_name(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(method, route, str(status["code"])).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def _route_name(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"
