"""POST /v1/embeddings with crossmodal.outputs: sparse and multi-vector outputs beside the OpenAI-shaped dense one."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

import crossmodal
from crossmodal.testing.outputs_family import OUTPUTS_DENSE_ONLY, build_outputs_model, outputs_registry

from ..helpers import client_for, error_code, image_part, png_bytes

REGISTRY = outputs_registry()
TEXTS = ["red red circle", "a cat", "一条 龙 龙"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> crossmodal.Model:
    return crossmodal.load_model(build_outputs_model(tmp_path_factory.mktemp("outputs") / "m", seed=4),
                                 families=REGISTRY)


def test_sparse_and_multivector_come_with_each_text(model: crossmodal.Model) -> None:
    with client_for(model) as client:
        response = client.post("/v1/embeddings", json={"input": TEXTS,
                                                       "crossmodal": {"outputs": ["sparse", "multivector"]}})
        plain = client.post("/v1/embeddings", json={"input": TEXTS}).json()
    assert response.status_code == 200, response.text
    body = response.json()
    want = model.embed_text_outputs(TEXTS, outputs=("sparse", "multivector"))
    assert want.sparse is not None and want.multivector is not None
    for i, item in enumerate(body["data"]):
        assert item["object"] == "embedding" and item["index"] == i
        np.testing.assert_allclose(item["embedding"], want.dense[i], atol=1e-6)
        assert item["sparse"] == {"indices": want.sparse[i].indices.tolist(), "values": want.sparse[i].values.tolist()}
        np.testing.assert_allclose(np.array(item["multivector"], dtype=np.float32), want.multivector[i], atol=1e-7)
    # without the extension the response is the plain OpenAI one
    assert all(set(item) == {"object", "index", "embedding", "truncated"} for item in plain["data"])
    np.testing.assert_allclose([d["embedding"] for d in plain["data"]], [d["embedding"] for d in body["data"]],
                               atol=1e-7)


def test_one_output_and_base64_dense(model: crossmodal.Model) -> None:
    with client_for(model) as client:
        body = client.post("/v1/embeddings", json={"input": "a cat", "encoding_format": "base64",
                                                   "crossmodal": {"outputs": ["sparse"]}}).json()
    item = body["data"][0]
    assert "multivector" not in item and item["sparse"]["values"] == [1.0, 1.0]
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4"),
                               model.embed_texts(["a cat"])[0], atol=1e-6)


def test_refusals_name_the_output_or_the_item(model: crossmodal.Model, tmp_path: Path) -> None:
    dense_only = crossmodal.load_model(build_outputs_model(tmp_path / "d", family=OUTPUTS_DENSE_ONLY.name),
                                       families=REGISTRY)
    with client_for(model) as client:
        unknown = client.post("/v1/embeddings", json={"input": "a", "crossmodal": {"outputs": ["colbert"]}})
        image = client.post("/v1/embeddings", json={"input": ["a", image_part(png_bytes())],
                                                    "crossmodal": {"outputs": ["sparse"]}})
        extra_key = client.post("/v1/embeddings", json={"input": "a", "crossmodal": {"output": ["sparse"]}})
    assert unknown.status_code == 422 and error_code(unknown) == "config"
    assert "unknown output 'colbert'; the outputs are dense, sparse, multivector" in unknown.json()["error"]["message"]
    assert image.status_code == 422
    assert image.json()["error"]["message"].startswith("input[1]: the sparse output is given for texts only")
    assert extra_key.status_code == 422 and error_code(extra_key) == "invalid_request"
    with client_for(dense_only) as client:
        missing = client.post("/v1/embeddings", json={"input": "a", "crossmodal": {"outputs": ["multivector"]}})
    assert missing.status_code == 422 and error_code(missing) == "unsupported_input"
    assert "gives no multivector output; it gives dense" in missing.json()["error"]["message"]


def test_the_openai_client_reads_them_through_extra_body(model: crossmodal.Model) -> None:
    openai = pytest.importorskip("openai")
    from crossmodal.server import ServerSettings, create_app

    from ..helpers import live_server, memory_store

    settings = ServerSettings(served_model_names=("outputs",))
    with live_server(create_app(settings, model=model, store=memory_store())) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        response = client.embeddings.create(model="outputs", input=["red red circle"],
                                            extra_body={"crossmodal": {"outputs": ["sparse"]}})
    want = model.embed_text_outputs(["red red circle"], outputs=("sparse",)).sparse
    assert want is not None
    assert response.data[0].model_extra["sparse"] == {"indices": want[0].indices.tolist(),
                                                      "values": want[0].values.tolist()}
    np.testing.assert_allclose(response.data[0].embedding, model.embed_texts(["red red circle"])[0], atol=1e-6)
