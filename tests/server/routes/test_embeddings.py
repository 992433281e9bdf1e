"""POST /v1/embeddings: the OpenAI client round trip, parity with the library, pairs, formats, errors."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from crossmodal.server import ServerSettings, create_app
from crossmodal.testing.fake import fake_model as build_fake_model

from ..helpers import client_for, data_url, error_code, image_part, live_server, memory_store, png_bytes

PHOTOS = ["formats/cat.jpg", "formats/boats on a lake.png", "formats/chess-queen.gif", "formats/tree.webp",
          "st-image-search/two_dogs_in_snow.jpg"]


def _vectors(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return np.asarray([d["embedding"] for d in data], dtype=np.float32)


def test_openai_client_round_trip_text_and_images(tiny_model, images_dir):
    openai = pytest.importorskip("openai")
    texts = ["a dog on a beach", "一条龙", "a red circle"]
    photo = (images_dir / PHOTOS[0]).read_bytes()
    settings = ServerSettings(served_model_names=("tiny-clip", "clip"))
    with live_server(create_app(settings, model=tiny_model, store=memory_store())) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny-clip", "clip"]
        # Unchanged client, default call: it asks for base64 and decodes it itself.
        response = client.embeddings.create(model="tiny-clip", input=texts)
        got = np.asarray([d.embedding for d in response.data], dtype=np.float32)
        np.testing.assert_allclose(got, tiny_model.embed_texts(texts), atol=1e-6)
        assert response.model == "tiny-clip" and response.usage.prompt_tokens > 0
        # Explicit float format and a single string, by an alias.
        single = client.embeddings.create(model="clip", input="a dog on a beach", encoding_format="float")
        np.testing.assert_allclose(single.data[0].embedding, tiny_model.embed_texts(["a dog on a beach"])[0], atol=1e-6)
        assert single.model == "clip"
        # Images in the chat API's image_url form, and a pair (one image part + one text part).
        mixed = client.embeddings.create(
            model="tiny-clip",
            input=[image_part(photo), [image_part(photo), {"type": "text", "text": "at night"}]],  # type: ignore[list-item]
        )
        got = np.asarray([d.embedding for d in mixed.data], dtype=np.float32)
        np.testing.assert_allclose(got[0], tiny_model.embed_images([photo])[0], atol=1e-6)
        np.testing.assert_allclose(got[1], tiny_model.embed_pairs([photo], ["at night"])[0], atol=1e-6)
        with pytest.raises(openai.NotFoundError):  # the directory's path is not an id the server answers to
            client.embeddings.create(model=tiny_model.name, input="a")


def test_a_model_directory_is_served_under_its_name_and_its_path_never_shows(tiny_model, tiny_clip_onnx_dir, tmp_path):
    server_paths = {tiny_model.name, str(tiny_clip_onnx_dir), str(tiny_clip_onnx_dir.parent)}
    assert tiny_model.name.startswith("/")  # a model from a directory is named by a path
    store = memory_store()
    store.collection("built-here", tiny_model).add_texts(["a dog"])
    elsewhere = build_fake_model(dim=16, name="/srv/models/other-clip")  # a collection made by another model directory
    store.collection("other", elsewhere).add_texts(["a cat"])
    server_paths.add("/srv/models")
    with client_for(tiny_model, ServerSettings(), store=store) as client:
        models = client.get("/v1/models").json()
        assert [m["id"] for m in models["data"]] == [tiny_clip_onnx_dir.name]
        assert models["data"][0]["space"]["model"] == tiny_clip_onnx_dir.name
        ok = client.post("/v1/embeddings", json={"input": "a", "model": tiny_clip_onnx_dir.name})
        assert ok.status_code == 200 and ok.json()["model"] == tiny_clip_onnx_dir.name
        responses = [
            models, ok.json(), client.get("/readyz").json(), client.get("/v1/collections").json(),
            client.post("/v1/embeddings", json={"input": "a", "model": "other"}).json(),
            client.post("/v1/embeddings", json={"input": "a", "dimensions": 3}).json(),
            client.post("/v1/collections/built-here/search", json={"vector": [0.5, 0.5]}).json(),
            client.post("/v1/collections/other/search", json={"text": "a cat"}).json(),
            client.post("/v1/collections/other/items", json={"items": [{"text": "a cow"}]}).json(),
        ]
    listing = {c["name"]: c["model"] for c in responses[3]["data"]}
    assert listing == {"built-here": tiny_clip_onnx_dir.name, "other": "other-clip"}
    assert responses[4]["error"]["code"] == "model_not_found" and tiny_clip_onnx_dir.name in responses[4]["error"]["message"]
    assert responses[6]["error"]["code"] == "dimension_mismatch"
    for mismatch in responses[7:]:
        assert mismatch["error"]["code"] == "space_mismatch" and "'other-clip'" in mismatch["error"]["message"]
    for body in responses:
        text = str(body)
        assert not any(path in text for path in server_paths), text


def test_vectors_equal_the_library_for_texts_images_and_pairs(tiny_model, images_dir):
    photos = [(images_dir / p).read_bytes() for p in PHOTOS]
    texts = ["a cat", "boats on a lake", "a chess queen", "a tree", "two dogs in the snow"]
    with client_for(tiny_model) as client:
        got_texts = _vectors(client.post("/v1/embeddings", json={"input": texts}))
        got_images = _vectors(client.post("/v1/embeddings", json={"input": [image_part(p) for p in photos]}))
        pairs = [[{"type": "text", "text": t}, image_part(p)] for p, t in zip(photos, texts)]  # text first: order is free
        got_pairs = _vectors(client.post("/v1/embeddings", json={"input": pairs}))
        got_weighted = _vectors(client.post("/v1/embeddings", json={"input": pairs[:2], "image_weight": 0.8}))
    np.testing.assert_allclose(got_texts, tiny_model.embed_texts(texts), atol=1e-6)
    np.testing.assert_allclose(got_images, tiny_model.embed_images(photos), atol=1e-6)
    np.testing.assert_allclose(got_pairs, tiny_model.embed_pairs(photos, texts), atol=1e-6)
    np.testing.assert_allclose(got_weighted, tiny_model.embed_pairs(photos[:2], texts[:2], image_weight=0.8), atol=1e-6)


def test_mixed_items_keep_their_order_and_base64_matches_float(fake_model):
    red, blue = png_bytes((220, 30, 30)), png_bytes((30, 60, 220))
    inputs = ["first", image_part(red), [image_part(blue), {"type": "text", "text": "blue"}], {"type": "text", "text": "last"}]
    with client_for(fake_model) as client:
        floats = _vectors(client.post("/v1/embeddings", json={"input": inputs, "encoding_format": "float"}))
        b64 = client.post("/v1/embeddings", json={"input": inputs, "encoding_format": "base64"}).json()
    decoded = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64["data"]])
    np.testing.assert_array_equal(decoded, floats)
    expected = np.stack([
        fake_model.embed_texts(["first"])[0],
        fake_model.embed_images([red])[0],
        fake_model.embed_pairs([blue], ["blue"])[0],
        fake_model.embed_texts(["last"])[0],
    ])
    np.testing.assert_allclose(floats, expected, atol=1e-6)
    assert b64["object"] == "list" and b64["usage"]["total_tokens"] == b64["usage"]["prompt_tokens"] > 0


@pytest.mark.parametrize("body, code", [
    ({"input": []}, "invalid_input"),
    ({"input": [[1, 2, 3]]}, "invalid_input"),  # token arrays
    ({"input": [[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]]}, "invalid_input"),
    ({"input": [""]}, "empty_text"),
    ({"input": [{"type": "audio", "data": "x"}]}, "invalid_request"),
    ({"input": "a", "dimensions": 3}, "config"),
    ({"input": "a", "model": "text-embedding-3-small"}, "model_not_found"),
    ({"input": [{"type": "image_url", "image_url": {"url": "ftp://example.com/x.png"}}]}, "invalid_input"),
    ({"input": [{"type": "image_url", "image_url": "data:image/png,notbase64"}]}, "invalid_input"),
    ({"input": [{"type": "image_url", "image_url": "data:image/png;base64,!!!!"}]}, "image_decode"),
])
def test_bad_requests_get_a_clear_json_error(fake_model, body, code):
    with client_for(fake_model) as client:
        response = client.post("/v1/embeddings", json=body)
    assert response.status_code in (404, 413, 422), response.text
    assert error_code(response) == code
    assert "Traceback" not in response.text


def test_a_bad_item_names_its_position(fake_model):
    good = png_bytes()
    truncated = good[: len(good) // 2]
    with client_for(fake_model) as client:
        response = client.post("/v1/embeddings", json={"input": [image_part(good), "text", image_part(truncated)]})
    assert response.status_code == 422
    assert error_code(response) == "image_decode"
    assert response.json()["error"]["message"].startswith("input[2]")


def test_an_image_url_string_is_accepted_in_place_of_the_object(fake_model):
    red = png_bytes()
    with client_for(fake_model) as client:
        got = _vectors(client.post("/v1/embeddings", json={"input": [{"type": "image_url", "image_url": data_url(red)}]}))
    np.testing.assert_allclose(got[0], fake_model.embed_images([red])[0], atol=1e-6)
