"""The one exception -> HTTP status table, the JSON error shape, and what an error may never show."""

from __future__ import annotations

import inspect

import pytest

import crossmodal.errors as errors_module
from crossmodal.errors import CrossmodalError, ImageDecodeError, StoreUnavailable
from crossmodal.server import ServerSettings
from crossmodal.server.errors import NotReady, status_for

from .helpers import client_for, error_code

ALL_ERRORS = [cls for _, cls in inspect.getmembers(errors_module, inspect.isclass)
              if issubclass(cls, CrossmodalError)] + [NotReady]


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_class_has_a_status_and_a_stable_code(cls):
    status = status_for(cls("x"))
    assert 400 <= status < 600
    assert cls.code and cls.code.islower() and " " not in cls.code
    if issubclass(cls, errors_module.InputError):
        assert status in (413, 422)  # the client's input: never a server error


def test_codes_are_unique():
    codes = [cls.code for cls in ALL_ERRORS]
    assert len(codes) == len(set(codes))


class _Broken:
    """An encoder that fails like a bug would, with a server path in its message."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def encode_texts(self, inputs):
        raise self.exc

    def encode_images(self, pixels):
        raise self.exc


@pytest.mark.parametrize("exc, status, code", [
    (RuntimeError("boom in /srv/secret/model.onnx"), 500, "internal"),
    (StoreUnavailable("cannot open /srv/secret/store.db"), 503, "store_unavailable"),
    (ImageDecodeError("cannot read /srv/secret/x.png"), 422, "image_decode"),
])
def test_failures_never_show_stack_traces_or_server_paths(fake_model, tmp_path, exc, status, code):
    fake_model.encoder = _Broken(exc)
    settings = ServerSettings(roots=(tmp_path,))
    with client_for(fake_model, settings) as client:
        response = client.post("/v1/embeddings", json={"input": "a"})
    assert response.status_code == status, response.text
    assert error_code(response) == code
    body = response.json()["error"]
    assert set(body) == {"message", "type", "code", "param"}
    assert "Traceback" not in response.text and 'File "' not in response.text
    if status >= 500:
        assert "/srv/secret" not in response.text  # a server failure is answered generically


def test_messages_scrub_configured_paths(fake_model, tmp_path):
    settings = ServerSettings(roots=(tmp_path,))
    with client_for(fake_model, settings) as client:
        response = client.post("/v1/embeddings", json={
            "input": [{"type": "image_url", "image_url": {"url": f"file://{tmp_path}/missing.png"}}]})
    assert response.status_code == 422 and error_code(response) == "image_decode"
    assert str(tmp_path) not in response.text and "<server path>" in response.text


def test_routing_errors_are_json_too(fake_model):
    with client_for(fake_model) as client:
        missing = client.get("/nope")
        wrong_method = client.get("/v1/embeddings")
        not_json = client.post("/v1/embeddings", content=b"{not json", headers={"Content-Type": "application/json"})
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"
    assert not_json.status_code == 422 and error_code(not_json) == "invalid_request"
