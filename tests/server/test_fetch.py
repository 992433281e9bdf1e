"""Image URLs: off by default; when on, http(s) only, public addresses only (unless allowed), capped, timed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from crossmodal.server import FetchSettings, Limits, ServerSettings
from crossmodal.server.fetch import address_allowed

from .helpers import client_for, error_code, png_bytes

PICTURE = png_bytes((250, 120, 0), size=(40, 30))


class _Handler(BaseHTTPRequestHandler):
    hosts: list[str] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        _Handler.hosts.append(self.headers.get("Host", ""))
        if self.path == "/img.png":
            self._send(200, PICTURE)
        elif self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"\x89PNG" + b"0" * 1000)
        elif self.path == "/chunked-big":
            self.send_response(200)
            self.end_headers()  # no length: the body runs until the connection closes
            try:
                for _ in range(200):
                    self.wfile.write(b"0" * 10_000)
            except OSError:
                pass
            self.close_connection = True
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, PICTURE)
        elif self.path == "/redirect":
            self._redirect("/img.png")
        elif self.path == "/redirect-file":
            self._redirect("file:///etc/passwd")
        elif self.path == "/loop":
            self._redirect("/loop")
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def _embed_url(client, url: str):
    return client.post("/v1/embeddings", json={"input": [{"type": "image_url", "image_url": {"url": url}}]})


def _settings(**fetch) -> ServerSettings:
    return ServerSettings(fetch=FetchSettings(**{"enabled": True, "timeout_s": 1.0, **fetch}),
                          limits=Limits(max_image_bytes=100_000))


def test_fetching_is_off_by_default(fake_model, origin):
    with client_for(fake_model) as client:
        response = _embed_url(client, f"http://127.0.0.1:{origin}/img.png")
    assert response.status_code == 403 and error_code(response) == "fetch_not_allowed"
    assert "--allow-urls" in response.json()["error"]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "2130706433", "127.1"])
def test_loopback_is_refused_unless_allowed(fake_model, origin, host):
    with client_for(fake_model, _settings()) as client:
        response = _embed_url(client, f"http://{host}:{origin}/img.png")
    assert response.status_code in (403, 422), response.text
    if response.status_code == 422:  # a name this machine cannot resolve at all
        assert error_code(response) == "fetch_failed"
    else:
        assert error_code(response) == "fetch_not_allowed"


@pytest.mark.parametrize("answer", [["10.1.2.3"], ["192.168.0.7"], ["169.254.169.254"], ["::ffff:127.0.0.1"],
                                    ["fd00::1"], ["100.64.0.1"], ["8.8.8.8", "127.0.0.1"], ["224.0.0.1"],
                                    ["64:ff9b::7f00:1"], ["2002:7f00:1::"], ["::127.0.0.1"]])
def test_every_resolved_address_is_checked(fake_model, answer):
    async def resolver(host, port):
        return answer

    with client_for(fake_model, _settings(), resolver=resolver) as client:
        response = _embed_url(client, "https://images.example/cat.png")
    assert response.status_code == 403 and error_code(response) == "fetch_not_allowed"


def test_allowed_private_fetch_connects_to_the_checked_address(fake_model, origin):
    async def resolver(host, port):  # a name no real DNS knows: the fetch must go to this answer
        assert host == "images.test"
        return ["127.0.0.1"]

    _Handler.hosts.clear()
    with client_for(fake_model, _settings(allow_private=True), resolver=resolver) as client:
        response = _embed_url(client, f"http://images.test:{origin}/img.png")
        redirected = _embed_url(client, f"http://images.test:{origin}/redirect")
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["data"][0]["embedding"], fake_model.embed_images([PICTURE])[0], atol=1e-6)
    assert redirected.status_code == 200, redirected.text
    assert _Handler.hosts[0] == f"images.test:{origin}"  # the Host header kept the name


@pytest.mark.parametrize("path, status, code", [
    ("/big", 413, "limit_exceeded"),
    ("/chunked-big", 413, "limit_exceeded"),
    ("/slow", 422, "fetch_failed"),
    ("/missing", 422, "fetch_failed"),
    ("/redirect-file", 403, "fetch_not_allowed"),
    ("/loop", 422, "fetch_failed"),
])
def test_fetch_limits_and_failures(fake_model, origin, path, status, code):
    with client_for(fake_model, _settings(allow_private=True)) as client:
        start = time.monotonic()
        response = _embed_url(client, f"http://127.0.0.1:{origin}{path}")
    assert time.monotonic() - start < 2.5  # the deadline holds, even against a slow server
    assert response.status_code == status, response.text
    assert error_code(response) == code


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x.png", "gopher://x/", "http://user:pw@127.0.0.1/x.png"])
def test_only_plain_http_and_https(fake_model, url):
    with client_for(fake_model, _settings(allow_private=True)) as client:
        response = _embed_url(client, url)
    assert response.status_code in (403, 422)
    assert error_code(response) in ("fetch_not_allowed", "invalid_input")


@pytest.mark.parametrize("ip, public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("127.0.0.1", False), ("10.0.0.1", False),
    ("172.16.5.4", False), ("192.168.1.1", False), ("169.254.169.254", False), ("::1", False), ("fe80::1%eth0", False),
    ("::ffff:10.0.0.1", False), ("0.0.0.0", False), ("::", False), ("239.1.1.1", False), ("100.64.1.1", False),
])
def test_address_allowed(ip, public):
    assert address_allowed(ip, allow_private=False) is public
    if ip not in ("0.0.0.0", "::", "239.1.1.1"):
        assert address_allowed(ip, allow_private=True) is True


@pytest.mark.parametrize("ip", [
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::127.0.0.1",  # NAT64, well-known prefix
    "64:ff9b:1::7f00:1", "64:ff9b:1:7f00:1::",  # NAT64, local-use prefix (private by definition)
    "2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:101::1",  # 6to4 of loopback, link-local, private
    "::127.0.0.1", "::7f00:1", "::10.0.0.1",  # IPv4-compatible
    "::ffff:127.0.0.1", "::ffff:0:7f00:1",  # IPv4-mapped, IPv4-translated
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo (client 192.0.2.45, documentation range)
    "2001:0:7f00:1::1",  # Teredo with a loopback server
])
def test_ipv6_spellings_of_private_ipv4_addresses_are_refused(ip):
    assert address_allowed(ip, allow_private=False) is False
    assert address_allowed(ip, allow_private=True) is True


@pytest.mark.parametrize("ip", ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "::8.8.8.8"])
def test_ipv6_spellings_of_public_ipv4_addresses_are_allowed(ip):
    assert address_allowed(ip, allow_private=False) is True

