"""Server test helpers (imported by the tests; not a conftest): an app on the fake or a tiny model, in-process or on a real loopback port."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("fastapi")

import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from crossmodal.server import ServerSettings, create_app  # noqa: E402
from crossmodal.store import open_store  # noqa: E402


class GatedEncoder:
    """Records every model call; the first one waits until the test lets it go (so others can queue up)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []
        self.entered, self.release = threading.Event(), threading.Event()

    def _gate(self, kind: str, n: int) -> None:
        self.calls.append((kind, n))
        self.entered.set()
        assert self.release.wait(30), "the test never released the model"

    def encode_texts(self, inputs):
        self._gate("text", len(inputs["input_ids"]))
        return self.inner.encode_texts(inputs)

    def encode_images(self, pixels):
        self._gate("image", len(pixels))
        return self.inner.encode_images(pixels)


class CountingEncoder:
    """Records every model call: (kind, number of inputs)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []

    def encode_texts(self, inputs):
        self.calls.append(("text", len(inputs["input_ids"])))
        return self.inner.encode_texts(inputs)

    def encode_images(self, pixels):
        self.calls.append(("image", len(pixels)))
        return self.inner.encode_images(pixels)


def memory_store() -> Any:
    return open_store("memory://")


@contextmanager
def client_for(model: Any, settings: ServerSettings | None = None, store: Any = None, **kw: Any) -> Iterator[TestClient]:
    """A TestClient (lifespan run) on ``model``, with ``store`` or an empty in-memory store."""
    app = create_app(settings or ServerSettings(), model=model, store=store or memory_store(), **kw)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", limit_concurrency=1000, backlog=512)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 32), fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format=fmt)
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def image_part(data: bytes) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url(data)}}


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]["code"]
