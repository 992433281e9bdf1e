"""Health, readiness (while loading, after a failed load), models, metrics and the OpenAPI docs."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient

from crossmodal.server import ServerSettings, create_app

from ..helpers import client_for, error_code


def test_health_models_docs(fake_model):
    with client_for(fake_model) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        models = client.get("/v1/models").json()
        assert models["object"] == "list" and models["data"][0]["id"] == "fake" and models["data"][0]["dim"] == 16
        spec = client.get("/openapi.json").json()
        assert {"/v1/embeddings", "/v1/collections", "/v1/collections/{name}/search", "/v1/collections/{name}/items",
                "/v1/collections/{name}/items/{item_id}", "/v1/models", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower() and "/openapi.json" in docs.text


def test_the_model_loads_in_the_background_and_readyz_says_when(tiny_clip_onnx_dir, model_cache):
    settings = ServerSettings(model=str(tiny_clip_onnx_dir), cache_dir=model_cache, offline=True, store="memory://")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200  # at once, loading or not
        deadline = time.monotonic() + 60
        while (ready := client.get("/readyz")).status_code != 200:
            assert ready.status_code == 503 and error_code(ready) == "not_ready"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ready.json()["store"] is True
        response = client.post("/v1/embeddings", json={"input": "a dog"})
        assert response.status_code == 200 and len(response.json()["data"][0]["embedding"]) > 0
        assert client.get("/v1/collections").json()["data"] == []


def test_a_failed_load_is_reported_without_details(tmp_path):
    settings = ServerSettings(model=str(tmp_path / "no-such-model"), offline=True, store="memory://")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while "failed" not in (ready := client.get("/readyz")).text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        embed = client.post("/v1/embeddings", json={"input": "a"})
    assert ready.status_code == 503 and error_code(ready) == "not_ready"
    assert embed.status_code == 503 and error_code(embed) == "not_ready"
    for response in (ready, embed):
        assert str(tmp_path) not in response.text and "Traceback" not in response.text


def test_metrics_count_requests_per_route_and_batch_sizes(fake_model):
    with client_for(fake_model) as client:
        for _ in range(3):
            client.post("/v1/embeddings", json={"input": ["a", "b"]})
        client.post("/v1/embeddings", json={"input": []})
        client.get("/v1/collections/x/items/some-id")
        text = client.get("/metrics").text
    assert 'crossmodal_http_requests_total{method="POST",route="/v1/embeddings",status="200"} 3.0' in text
    assert 'crossmodal_http_requests_total{method="POST",route="/v1/embeddings",status="422"} 1.0' in text
    # ids never become labels: the route template is the label
    assert 'route="/v1/collections/{name}/items/{item_id:path}"' in text and "some-id" not in text
    assert re.search(r'crossmodal_http_request_duration_seconds_count\{method="POST",route="/v1/embeddings"\} 4\.0', text)
    assert re.search(r'crossmodal_batch_items_sum\{kind="text"\} 6\.0', text)
    assert re.search(r"crossmodal_batch_requests_count 3\.0", text)


def test_two_apps_keep_separate_metrics(fake_model):
    with client_for(fake_model) as first, client_for(fake_model) as second:
        first.post("/v1/embeddings", json={"input": "a"})
        assert 'route="/v1/embeddings"' in first.get("/metrics").text
        assert 'route="/v1/embeddings"' not in second.get("/metrics").text
