"""A tiny stand-in for the Hugging Face hub's HTTP API, serving local directories as repos.

It speaks just enough of the protocol for ``huggingface_hub.snapshot_download``
(repo info, the file tree, and HEAD/GET on ``/resolve/``), so the real
download and caching code runs in tests with no internet. It records every
request, so tests can prove that a cached model loads with no network at all.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        self.requests: list[str] = []
        self.url = ""

    def files(self, repo: str) -> list[str]:
        root = self.repos[repo]
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and "revision" in parts:
                repo = "/".join(parts[2 : parts.index("revision")])
                if repo not in hub.repos:
                    return self._send(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"})
                info = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                        "siblings": [{"rfilename": f} for f in hub.files(repo)]}
                return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
            if parts[:2] == ["api", "models"] and "tree" in parts:
                repo = "/".join(parts[2 : parts.index("tree")])
                if repo not in hub.repos:
                    return self._send(404, b"", {"X-Error-Code": "RepoNotFound"})
                root = hub.repos[repo]
                entries = [{"type": "file", "path": f, "size": (root / f).stat().st_size,
                            "oid": hashlib.sha1((root / f).read_bytes()).hexdigest()} for f in hub.files(repo)]
                return self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})
            if "resolve" in parts:
                i = parts.index("resolve")
                repo, rel = "/".join(parts[:i]), "/".join(parts[i + 2 :])
                if repo not in hub.repos:
                    return self._send(404, b"", {"X-Error-Code": "RepoNotFound"})
                file = hub.repos[repo] / rel
                if not file.is_file():
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                data = file.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                return self._send(200, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'})
            return self._send(404)

        do_GET = _route
        do_HEAD = _route

    return Handler


@contextmanager
def serve(repos: dict[str, Path]) -> Iterator[FakeHub]:
    hub = FakeHub(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
