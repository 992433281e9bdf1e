"""``crossmodal serve``: options -> ServerSettings at the edge, and a real server process end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi")

from crossmodal.cli.main import cli  # noqa: E402
from crossmodal.errors import ConfigError  # noqa: E402
from crossmodal.server import ServerSettings, read_tokens  # noqa: E402
from crossmodal.settings import Settings  # noqa: E402

TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def captured(monkeypatch):
    """Replace uvicorn.run: record the app and where it would bind."""
    import uvicorn

    seen: dict = {}

    def fake_run(app, **kw):
        seen.update(kw, app=app)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return seen


def _run(args, env=None):
    return CliRunner().invoke(cli, args, obj=Settings.from_env(env or {"HOME": "/nonexistent-home"}),
                              catch_exceptions=False)


def test_options_become_server_settings(captured, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# readers\n{TOKEN}\n\n")
    result = _run(["serve", "--port", "9123", "--store", "memory://", "--model", "some/model", "--mode", "fast",
                   "--root", str(tmp_path), "--token-file", str(tokens), "--allow-urls", "--max-images", "4",
                   "--max-batch", "16", "--batch-wait-ms", "1", "--served-model-name", "clip", "--max-request-pixels", "1000",
                   "--served-model-name", "clip-b32"])
    assert result.exit_code == 0, result.output
    settings: ServerSettings = captured["app"].state.settings
    assert (captured["host"], captured["port"]) == ("127.0.0.1", 9123)  # loopback unless told otherwise
    assert (settings.model, settings.mode, settings.store) == ("some/model", "fast", "memory://")
    assert settings.roots == (tmp_path.resolve(),)
    assert settings.tokens == frozenset({TOKEN}) and settings.fetch.enabled and not settings.fetch.allow_private
    assert settings.limits.max_images == 4 and settings.batching.max_items == 16
    assert settings.served_model_names == ("clip", "clip-b32") and settings.limits.max_request_pixels == 1000
    assert settings.allowed_hosts == ("127.0.0.1", "localhost", "[::1]")  # DNS rebinding cannot reach it
    assert "warning" not in result.output


def test_environment_fills_what_options_leave_out(captured):
    result = _run(["serve"], env={"HOME": "/x", "CROSSMODAL_MODEL": "env/model", "CROSSMODAL_STORE": "/data/store"})
    assert result.exit_code == 0, result.output
    settings = captured["app"].state.settings
    assert (settings.model, settings.store) == ("env/model", "/data/store")
    assert settings.upload_dir == Path("/data/store-uploads")
    assert not settings.fetch.enabled and settings.tokens == frozenset()


def test_a_public_bind_without_tokens_warns(captured):
    result = _run(["serve", "--host", "0.0.0.0", "--store", "memory://"])
    assert result.exit_code == 0
    assert "without --token-file" in result.output
    assert captured["app"].state.settings.allowed_hosts == ()


@pytest.mark.parametrize("content, message", [("", "holds no token"), ("short\n", "shorter than 16")])
def test_bad_token_files(tmp_path, content, message):
    path = tmp_path / "t"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_tokens(path)


def test_a_missing_root_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        ServerSettings(roots=(tmp_path / "nope",))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_a_real_server(tiny_clip_onnx_dir, tiny_model, model_cache, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    port = _free_port()
    env = {**os.environ, "CROSSMODAL_CACHE": str(model_cache), "CROSSMODAL_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "crossmodal.cli.main", "serve", "--port", str(port), "--model", str(tiny_clip_onnx_dir),
         "--store", str(tmp_path / "store"), "--token-file", str(tokens), "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                if httpx.get(url + "/readyz", headers=auth, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.2)
        assert httpx.get(url + "/healthz").status_code == 200
        assert httpx.get(url + "/readyz").status_code == 401
        response = httpx.post(url + "/v1/embeddings", json={"input": ["a dog"]}, headers=auth, timeout=30)
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["data"][0]["embedding"], tiny_model.embed_texts(["a dog"])[0], atol=1e-6)
    finally:
        proc.terminate()
        proc.wait(20)
