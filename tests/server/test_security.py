"""Tokens on every endpoint but /healthz, write tokens, and reading files only under the roots."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.routing import APIRoute

from crossmodal.errors import LimitExceeded, PathNotAllowed
from crossmodal.server import Limits, ServerSettings, create_app
from crossmodal.server.security import read_file_under_roots, resolve_under_roots

from .helpers import client_for, error_code, memory_store, png_bytes

READ = "r" * 24
WRITE = "w" * 24


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _api_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route, through included routers (FastAPI no longer flattens them)."""
    out = []
    for route in app.routes:
        for sub in getattr(getattr(route, "original_router", None), "routes", [route]):
            if isinstance(sub, APIRoute):
                out += [(method, sub.path) for method in sorted(sub.methods)]
    return out


def _concrete(path: str) -> str:
    return path.replace("{name}", "photos").replace("{item_id}", "x").replace("{item_id:path}", "x")


def test_every_endpoint_but_healthz_and_the_page_shell_needs_the_token(fake_model):
    settings = ServerSettings(tokens=frozenset({READ}))
    app = create_app(settings, model=fake_model, store=memory_store())
    routes = _api_routes(app)
    routes += [("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/metrics"), ("GET", "/no/such/route")]
    assert ("POST", "/v1/embeddings") in routes
    with client_for(fake_model, settings) as client:
        for method, path in routes:
            if path in ("/healthz", "/"):
                continue
            for headers in ({}, _auth("wrong" * 5), {"Authorization": READ}, {"Authorization": "Basic " + READ}):
                response = client.request(method, _concrete(path), headers=headers)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert error_code(response) == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200  # the static shell: code only, no data
        assert client.get("/static/app.js").status_code == 200
        ok = client.post("/v1/embeddings", json={"input": "a"}, headers=_auth(READ))
        assert ok.status_code == 200
        assert client.get("/metrics", headers=_auth(READ)).status_code == 200
        assert client.get("/openapi.json", headers=_auth(READ)).json()["info"]["title"] == "crossmodal"


def test_a_stranger_body_is_refused_before_it_is_read(fake_model):
    settings = ServerSettings(tokens=frozenset({READ}), limits=Limits(max_body_bytes=1000))
    with client_for(fake_model, settings) as client:
        response = client.post("/v1/embeddings", content=b"x" * 5000, headers={"Content-Type": "application/json"})
    assert response.status_code == 401  # not 413: the token check comes first


def test_write_endpoints_need_a_write_token_when_write_tokens_are_set(fake_model):
    settings = ServerSettings(tokens=frozenset({READ}), write_tokens=frozenset({WRITE}))
    writes = [(m, path) for m, path in _api_routes(create_app(settings, model=fake_model, store=memory_store()))
              if m in ("DELETE", "PUT") or (m == "POST" and path.endswith("/items"))]
    with client_for(fake_model, settings) as client:
        # A write token may also read.
        assert client.post("/v1/embeddings", json={"input": "a"}, headers=_auth(WRITE)).status_code == 200
        for method, path in writes:
            response = client.request(method, _concrete(path), headers=_auth(READ), json={"items": []})
            assert response.status_code == 403, (method, path, response.text)
            assert error_code(response) == "access_denied"
            assert client.request(method, _concrete(path), json={"items": []}).status_code == 401
    if not writes:
        pytest.skip("no write routes registered yet")


# -- paths under roots ---------------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """root/ (allowed) with images, symlinks in and out; secret.png and outside/ beside it."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "ok.png").write_bytes(png_bytes((10, 200, 10)))
    (root / "sub" / "ok2.png").write_bytes(png_bytes((10, 10, 200)))
    (tmp_path / "secret.png").write_bytes(png_bytes((1, 2, 3)))
    (tmp_path / "outside" / "secret.png").write_bytes(png_bytes((4, 5, 6)))
    (root / "link_in.png").symlink_to(root / "ok.png")
    (root / "link_out.png").symlink_to(tmp_path / "secret.png")
    (root / "dirlink").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "rel_link.png").symlink_to("../secret.png")
    return {"root": root, "tmp": tmp_path}


ESCAPES = [
    "../secret.png",
    "sub/../../secret.png",
    "./sub/../../secret.png",
    "{tmp}/secret.png",
    "{root}/../secret.png",
    "/etc/passwd",
    "link_out.png",
    "rel_link.png",
    "dirlink/secret.png",
    "{root}/dirlink/secret.png",
    "file://{root}/%2e%2e/secret.png",
    "file://{root}/..%2fsecret.png",
    "file://{root}/%2E%2E%2Fsecret.png",
    "file://{tmp}/secret.png",
    "file:///etc/passwd",
    "file://evil.example.com/{root}/ok.png",
    "ok.png\x00.jpg",
]


@pytest.mark.parametrize("raw", ESCAPES)
def test_paths_that_escape_the_root_are_refused(tree, raw):
    raw = raw.format(root=tree["root"], tmp=tree["tmp"])
    with pytest.raises(PathNotAllowed) as info:
        read_file_under_roots(raw, [tree["root"]], max_bytes=10**6)
    assert str(tree["tmp"]) not in str(info.value).replace(raw, "")  # the message names only what was sent


@pytest.mark.parametrize("raw, expected", [
    ("ok.png", "ok.png"),
    ("sub/ok2.png", "sub/ok2.png"),
    ("sub/../ok.png", "ok.png"),
    ("{root}/sub/ok2.png", "sub/ok2.png"),
    ("link_in.png", "ok.png"),
    ("file://{root}/sub/ok2.png", "sub/ok2.png"),
    ("file://localhost{root}/sub/%6Fk2.png", "sub/ok2.png"),
])
def test_paths_inside_the_root_are_read(tree, raw, expected):
    raw = raw.format(root=tree["root"])
    assert read_file_under_roots(raw, [tree["root"]], max_bytes=10**6) == (tree["root"] / expected).read_bytes()


def test_percent_escapes_in_a_plain_path_are_file_names_not_traversal(tree):
    with pytest.raises(Exception) as info:  # root/%2e%2e/secret.png does not exist: not found, not the secret
        read_file_under_roots("%2e%2e/secret.png", [tree["root"]], max_bytes=10**6)
    assert not isinstance(info.value, PathNotAllowed)
    assert resolve_under_roots("%2e%2e/x", [tree["root"]]) == tree["root"] / "%2e%2e" / "x"


def test_no_roots_means_no_files(tree):
    with pytest.raises(PathNotAllowed, match="reads no files"):
        read_file_under_roots(str(tree["root"] / "ok.png"), [], max_bytes=10**6)


def test_a_file_over_the_byte_limit_is_refused(tree):
    with pytest.raises(LimitExceeded):
        read_file_under_roots("ok.png", [tree["root"]], max_bytes=10)


def test_a_directory_or_fifo_is_not_read(tree):
    os.mkfifo(tree["root"] / "fifo")
    for raw in ("sub", "fifo"):
        with pytest.raises(Exception) as info:
            read_file_under_roots(raw, [tree["root"]], max_bytes=10**6)
        assert "regular file" in str(info.value) or "not readable" in str(info.value) or "Is a directory" in str(info.value)


def _swap_after_the_check(monkeypatch, swap) -> None:
    """Run ``swap()`` right after the path was resolved and checked, before anything opens it: the race an
    attacker who can write under the root would try to win, here won every time."""
    from crossmodal.server import security

    checked = security._located

    def located_then_swapped(raw, roots):
        found = checked(raw, roots)
        swap()
        return found

    monkeypatch.setattr(security, "_located", located_then_swapped)


@pytest.mark.parametrize("via_fallback", [False, True])
def test_a_file_swapped_for_a_symlink_after_the_check_is_not_read(tree, monkeypatch, via_fallback):
    from crossmodal.server import security

    if via_fallback:  # where openat is missing: open, then check what was opened
        monkeypatch.setattr(security, "_DIRECTORY", 0)
    target = tree["root"] / "ok.png"

    def swap():
        target.unlink()
        target.symlink_to(tree["tmp"] / "secret.png")

    _swap_after_the_check(monkeypatch, swap)
    with pytest.raises(PathNotAllowed):
        read_file_under_roots("ok.png", [tree["root"]], max_bytes=10**6)


@pytest.mark.parametrize("via_fallback", [False, True])
def test_a_folder_swapped_for_a_symlink_after_the_check_is_not_read(tree, monkeypatch, via_fallback):
    from crossmodal.server import security

    if via_fallback:
        monkeypatch.setattr(security, "_DIRECTORY", 0)
    (tree["tmp"] / "outside" / "ok2.png").write_bytes(png_bytes((9, 9, 9)))
    sub = tree["root"] / "sub"

    def swap():
        sub.rename(tree["tmp"] / "moved-away")
        sub.symlink_to(tree["tmp"] / "outside", target_is_directory=True)

    _swap_after_the_check(monkeypatch, swap)
    with pytest.raises(PathNotAllowed):
        read_file_under_roots("sub/ok2.png", [tree["root"]], max_bytes=10**6)


def test_an_image_added_by_path_is_embedded_and_hashed_from_the_bytes_that_were_checked(fake_model, tree, monkeypatch):
    """The file is swapped for a symlink to a file outside the root after the server read it, just before the
    collection would open it again: the item must be what was checked, not what the symlink points to."""
    import hashlib

    from crossmodal.collection import Collection

    root, target = tree["root"], tree["root"] / "ok.png"
    checked = target.read_bytes()
    secret = (tree["tmp"] / "secret.png").read_bytes()
    store = memory_store()
    add_images = Collection.add_images

    def swapped_then_added(self, images, **kw):
        target.unlink()
        target.symlink_to(tree["tmp"] / "secret.png")
        return add_images(self, images, **kw)

    monkeypatch.setattr(Collection, "add_images", swapped_then_added)
    with client_for(fake_model, ServerSettings(roots=(root,)), store=store) as client:
        response = client.post("/v1/collections/c/items", json={"items": [{"image": {"path": "ok.png"}}]})
    assert response.status_code == 200, response.text
    item = response.json()["items"][0]
    assert item["reference"] == "ok.png"
    assert item["content_hash"] == "sha256:" + hashlib.sha256(checked).hexdigest() != "sha256:" + hashlib.sha256(secret).hexdigest()
    stored = store.collection("c").get(item["id"], vector=True).vector
    np.testing.assert_allclose(stored, fake_model.embed_images([checked])[0], atol=1e-6)


@pytest.mark.parametrize("raw", [e for e in ESCAPES if e.startswith("file:")])
def test_file_urls_over_http_follow_the_same_rules(fake_model, tree, raw):
    settings = ServerSettings(roots=(tree["root"],))
    url = raw.format(root=tree["root"], tmp=tree["tmp"])
    with client_for(fake_model, settings) as client:
        response = client.post("/v1/embeddings", json={"input": [{"type": "image_url", "image_url": {"url": url}}]})
        assert response.status_code == 403, response.text
        assert error_code(response) == "path_not_allowed"
        # The message may echo what was sent, never what it resolved to.
        secret = str(tree["tmp"] / "secret.png")
        if secret not in url:
            assert secret not in response.text
        assert str(tree["tmp"] / "outside") not in response.text
        good = client.post("/v1/embeddings", json={
            "input": [{"type": "image_url", "image_url": {"url": "file://" + quote(str(tree["root"] / "sub" / "ok2.png"))}}]})
    assert good.status_code == 200, good.text
    expected = fake_model.embed_images([tree["root"] / "sub" / "ok2.png"])[0]
    np.testing.assert_allclose(good.json()["data"][0]["embedding"], expected, atol=1e-6)


def test_a_server_without_roots_refuses_file_urls(fake_model, tree):
    with client_for(fake_model) as client:
        response = client.post("/v1/embeddings", json={
            "input": [{"type": "image_url", "image_url": {"url": "file://" + str(tree["root"] / "ok.png")}}]})
    assert response.status_code == 403 and error_code(response) == "path_not_allowed"


# -- hosts and origins ---------------------------------------------------------------------------------------------


def test_other_host_names_are_refused_when_hosts_are_pinned(fake_model):
    settings = ServerSettings(allowed_hosts=("127.0.0.1", "localhost"))
    with client_for(fake_model, settings) as client:
        rebound = client.post("/v1/embeddings", json={"input": "a"}, headers={"Host": "evil.example:8000"})
        assert rebound.status_code == 403 and error_code(rebound) == "access_denied"
        for host in ("127.0.0.1:8000", "localhost", "LOCALHOST:1"):
            assert client.post("/v1/embeddings", json={"input": "a"}, headers={"Host": host}).status_code == 200, host


def test_cross_site_writes_are_refused(fake_model, tmp_path):
    settings = ServerSettings(cors_origins=("https://app.example",), upload_dir=tmp_path)
    body = {"items": [{"text": "planted"}]}
    with client_for(fake_model, settings) as client:
        csrf = client.post("/v1/collections/c/items", json=body, headers={"Origin": "https://evil.example"})
        assert csrf.status_code == 403 and error_code(csrf) == "access_denied"
        form = client.post("/v1/collections/c/items", content=json.dumps(body), headers={"Content-Type": "text/plain"})
        assert form.status_code == 422  # a "simple" cross-site form body is not taken for JSON
        same = client.post("/v1/collections/c/items", json=body, headers={"Origin": "http://testserver"})
        assert same.status_code == 200, same.text
        allowed = client.post("/v1/collections/c/items", json=body, headers={"Origin": "https://app.example"})
        assert allowed.status_code == 200
        # Reads from a page elsewhere are not writes: the browser's same-origin policy guards their answers.
        assert client.get("/v1/collections", headers={"Origin": "https://evil.example"}).status_code == 200


@pytest.mark.parametrize("origin", ["null", "NULL", ""])
def test_an_opaque_origin_is_refused_like_any_other_site(fake_model, tmp_path, origin):
    # Sandboxed frames, file: pages and some redirects send "Origin: null": they are not this site.
    store = memory_store()
    settings = ServerSettings(upload_dir=tmp_path)
    with client_for(fake_model, settings, store=store) as client:
        upload = client.post("/v1/collections/planted/items", headers={"Origin": origin},
                             files=[("file", ("x.png", png_bytes(), "image/png"))])
        assert upload.status_code == 403 and error_code(upload) == "access_denied", upload.text
        as_json = client.post("/v1/collections/planted/items", json={"items": [{"text": "x"}]},
                              headers={"Origin": origin})
        assert as_json.status_code == 403 and error_code(as_json) == "access_denied"
        deleted = client.delete("/v1/collections/planted/items/x", headers={"Origin": origin})
        assert deleted.status_code == 403
    assert store.collections() == []


def test_an_opaque_origin_passes_only_when_the_operator_allows_it_by_name(fake_model, tmp_path):
    settings = ServerSettings(upload_dir=tmp_path, cors_origins=("null",))
    with client_for(fake_model, settings) as client:
        allowed = client.post("/v1/collections/c/items", json={"items": [{"text": "x"}]}, headers={"Origin": "null"})
        assert allowed.status_code == 200, allowed.text
