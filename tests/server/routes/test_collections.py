"""Collections over HTTP: the same results as the library, every way to add an image, thumbnails, and the rules."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crossmodal.server import FetchSettings, Limits, ServerSettings
from crossmodal.store import open_store
from crossmodal.stores.filters import MAX_CONDITIONS, MAX_DEPTH
from crossmodal.testing.shapes import render

from ..helpers import client_for, error_code, png_bytes

SHAPES = [("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "circle")]
WRITE = "w" * 24
READ = "r" * 24


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "pictures"
    folder.mkdir()
    for color, shape in SHAPES:
        render(color, shape, size=200).save(folder / f"{color}_{shape}.png")
    (tmp_path / "secret.png").write_bytes(png_bytes((1, 2, 3)))
    return folder


@pytest.fixture
def store(fake_model, root):
    s = open_store("memory://")
    col = s.collection("shapes", fake_model, root=str(root))
    col.add_images([root / f"{c}_{s_}.png" for c, s_ in SHAPES], metadata=[{"color": c, "n": i} for i, (c, _) in enumerate(SHAPES)])
    col.add_texts([f"a {c} {s_}" for c, s_ in SHAPES], metadata=[{"color": c} for c, _ in SHAPES])
    col.add_pairs([root / "red_circle.png"], ["a red circle on white"], metadata=[{"color": "red"}])
    return s


def _nested(depth: int) -> dict:
    where: dict = {"color": {"$ne": "blue"}}
    for _ in range(depth):
        where = {"$and": [where, {"n": {"$lt": 3}}]}
    return where


def _settings(root: Path, tmp_path: Path, **kw) -> ServerSettings:
    return ServerSettings(roots=(root,), upload_dir=tmp_path / "uploads", **kw)


def _ids_scores(hits) -> list[tuple[str, float]]:
    return [(h["id"], round(h["score"], 5)) for h in hits]


@pytest.mark.parametrize("query, library", [
    ({"text": "a red circle"}, {"text": "a red circle"}),
    ({"text": "a blue square", "modality": "image"}, {"text": "a blue square", "modality": "image"}),
    ({"text": "circle", "where": {"color": {"$in": ["red", "yellow"]}}}, {"text": "circle", "where": {"color": {"$in": ["red", "yellow"]}}}),
    ({"text": "a shape", "modality": "text", "top_k": 2}, {"text": "a shape", "modality": "text", "top_k": 2}),
    ({"text": "x", "where": {"n": {"$gte": 2}}}, {"text": "x", "where": {"n": {"$gte": 2}}}),
])
def test_search_matches_the_library(fake_model, store, root, tmp_path, query, library):
    col = store.collection("shapes", fake_model)
    expected = [(h.id, round(h.score, 5)) for h in col.search(**library)]
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        response = client.post("/v1/collections/shapes/search", json=query)
    assert response.status_code == 200, response.text
    assert _ids_scores(response.json()["hits"]) == expected
    assert expected  # the query finds something


def test_image_pair_vector_and_more_like_this_queries(fake_model, store, root, tmp_path):
    col = store.collection("shapes", fake_model)
    picture = (root / "blue_square.png").read_bytes()
    data = base64.b64encode(picture).decode()
    vector = fake_model.embed_texts(["a green triangle"])[0]
    like = col.search(text="a red circle", modality="image")[0].id
    cases = [
        ({"image": {"data": data}}, col.search(image=picture)),
        ({"image": {"url": "data:image/png;base64," + data}, "modality": "image"}, col.search(image=picture, modality="image")),
        ({"image": {"path": "blue_square.png"}, "text": "at night"}, col.search(pair=(picture, "at night"))),
        ({"image": {"data": data}, "text": "at night", "image_weight": 0.9},
         col.search(pair=(picture, "at night"), image_weight=0.9)),
        ({"vector": vector.tolist(), "modality": "text"}, col.search(vector=vector, modality="text")),
        ({"like": like}, col.search(like=like)),
    ]
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        for query, expected in cases:
            response = client.post("/v1/collections/shapes/search", json=query)
            assert response.status_code == 200, (query, response.text)
            assert _ids_scores(response.json()["hits"]) == [(h.id, round(h.score, 5)) for h in expected], query
    assert like not in [h.id for h in cases[-1][1]]  # more like this leaves the item itself out
    assert cases[0][1][0].reference == "blue_square.png" and cases[0][1][0].score == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("query, status, code", [
    ({}, 422, "invalid_input"),
    ({"text": "a", "vector": [0.0] * 16}, 422, "invalid_input"),
    ({"vector": [1.0, 2.0]}, 422, "dimension_mismatch"),
    ({"text": "a", "modality": "video"}, 422, "invalid_request"),
    ({"text": "a", "where": {"n": {"$regex": "x"}}}, 422, "config"),
    ({"text": "a", "top_k": 5000}, 422, "config"),
    ({"like": "no-such-id"}, 404, "item_not_found"),
    ({"image": {"path": "../secret.png"}}, 403, "path_not_allowed"),
    ({"image": {"url": "http://127.0.0.1/x.png"}}, 403, "fetch_not_allowed"),
    ({"image": {"data": "aGVsbG8="}}, 422, "image_decode"),
    ({"image": {"path": "red_circle.png", "data": "aGVsbG8="}}, 422, "invalid_input"),
    # filters past the limits every store honours: a clear 422, never a store failure
    ({"text": "a", "where": {"n": 2**64}}, 422, "config"),
    ({"text": "a", "where": {"n": {"$in": [1, 2**63]}}}, 422, "config"),
    ({"text": "a", "where": {"$or": [{"n": i} for i in range(501)]}}, 422, "config"),
    ({"text": "a", "where": _nested(MAX_DEPTH + 1)}, 422, "config"),
    ({"text": "a", "where": {"n": {"$in": list(range(40_000))}}}, 422, "config"),
])
def test_bad_searches(fake_model, store, root, tmp_path, query, status, code):
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        response = client.post("/v1/collections/shapes/search", json=query)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert str(tmp_path) not in response.text


def test_deep_and_wide_filters_within_the_limits_search_the_embedded_store(fake_model, root, tmp_path):
    # SQLite used to give up on these ("parser stack overflow", "too many terms in compound SELECT"): a 503.
    store = open_store(tmp_path / "store")
    col = store.collection("shapes", fake_model, root=str(root))
    col.add_texts([f"a {c} {s_}" for c, s_ in SHAPES], metadata=[{"color": c, "n": i} for i, (c, _) in enumerate(SHAPES)])
    wide = {"$or": [{"n": i} for i in range(MAX_CONDITIONS)]}
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        for where in (_nested(14), _nested(MAX_DEPTH), wide):
            response = client.post("/v1/collections/shapes/search", json={"text": "a circle", "where": where})
            assert response.status_code == 200, response.text
            expected = [(h.id, round(h.score, 5)) for h in col.search(text="a circle", where=where)]
            assert _ids_scores(response.json()["hits"]) == expected and expected
    store.close()


def test_missing_collection_and_other_space(fake_model, store, root, tmp_path):
    from crossmodal.testing.fake import fake_model as make_fake

    store.collection("other", make_fake(dim=16, seed=7)).add_texts(["x"])
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        missing = client.post("/v1/collections/nope/search", json={"text": "a"})
        other = client.post("/v1/collections/other/search", json={"text": "a"})
        listed = {c["name"]: c for c in client.get("/v1/collections").json()["data"]}
    assert missing.status_code == 404 and error_code(missing) == "collection_not_found"
    assert other.status_code == 422 and error_code(other) == "space_mismatch"
    assert listed["shapes"]["count"] == 9 and listed["shapes"]["counts"] == {"image": 4, "text": 4, "pair": 1}
    assert listed["shapes"]["searchable"] and not listed["other"]["searchable"]
    assert set(listed["shapes"]) >= {"name", "count", "model", "dim"}


# -- adding, getting, deleting ---------------------------------------------------------------------------------


@pytest.fixture
def origin() -> Iterator[str]:
    picture = png_bytes((9, 99, 199), size=(20, 20))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(picture)))
            self.end_headers()
            self.wfile.write(picture)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pic.png"
    server.shutdown()


def test_add_every_kind_of_item_then_find_get_and_delete_it(fake_model, root, tmp_path, origin):
    store = open_store("memory://")
    settings = _settings(root, tmp_path, fetch=FetchSettings(enabled=True, allow_private=True))
    green = (root / "green_triangle.png").read_bytes()
    with client_for(fake_model, settings, store=store) as client:
        response = client.post("/v1/collections/new/items", json={"items": [
            {"text": "a note about circles", "metadata": {"kind": "note"}},
            {"image": {"path": "red_circle.png"}, "metadata": {"kind": "file"}},
            {"image": {"data": base64.b64encode(green).decode()}, "id": "my-green"},
            {"image": {"url": origin}},
            {"image": {"path": "blue_square.png"}, "text": "a blue square, captioned"},
        ]})
        assert response.status_code == 200, response.text
        body = response.json()
        items = body["items"]
        assert body["count"] == 5 and not body["failures"]
        assert [i["modality"] for i in items] == ["text", "image", "image", "image", "pair"]
        assert items[1]["reference"] == "red_circle.png"  # relative to the root the new collection recorded
        assert items[2]["id"] == "my-green" and items[2]["reference"].startswith("upload://")
        assert items[3]["reference"] == origin
        assert str(tmp_path) not in response.text
        upload = client.post("/v1/collections/new/items", files=[("file", ("y.png", png_bytes((250, 250, 0)), "image/png")),
                                                                  ("file", ("b.png", png_bytes((0, 0, 0)), "image/png"))],
                             data={"metadata": json.dumps([{"n": 1}, {"n": 2}]), "text": ["yellow", "black"]})
        assert upload.status_code == 200, upload.text
        assert [i["modality"] for i in upload.json()["items"]] == ["pair", "pair"]
        assert upload.json()["items"][1]["metadata"] == {"n": 2}

        col = store.collection("new", fake_model)
        assert col.count() == 7
        np.testing.assert_allclose(col.get("my-green", vector=True).vector, fake_model.embed_images([green])[0], atol=1e-6)
        hits = client.post("/v1/collections/new/search", json={"image": {"data": base64.b64encode(green).decode()}}).json()["hits"]
        assert hits[0]["id"] == "my-green" and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)

        got = client.get(f"/v1/collections/new/items/{items[0]['id']}?vector=true").json()
        assert got["text"] == "a note about circles" and got["metadata"] == {"kind": "note"}
        np.testing.assert_allclose(got["vector"], fake_model.embed_texts(["a note about circles"])[0], atol=1e-6)
        for item in items + upload.json()["items"]:
            if item["thumbnail"]:
                thumb = client.get(item["thumbnail"])
                assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg", item
        deleted = client.delete("/v1/collections/new/items/my-green")
        assert deleted.status_code == 200
        assert client.delete("/v1/collections/new/items/my-green").status_code == 404
        assert client.get("/v1/collections/new/items/my-green").status_code == 404
        assert client.get("/v1/collections/new/thumbnails/my-green").status_code == 404
    assert store.collection("new", fake_model).count() == 6


@pytest.mark.parametrize("items, status, code", [
    ([{"image": {"path": "../secret.png"}}], 403, "path_not_allowed"),
    ([{"image": {"path": "{tmp}/secret.png"}}], 403, "path_not_allowed"),
    ([{"image": {"url": "file://{root}/%2e%2e/secret.png"}}], 403, "path_not_allowed"),
    ([{"image": {"path": "red_circle.png"}}, {"image": {"path": "../secret.png"}}], 403, "path_not_allowed"),
    ([{"image": {"data": "bm90IGFuIGltYWdl"}}], 422, "image_decode"),
    ([{"metadata": {"a": 1}}], 422, "invalid_input"),
    ([{"text": "x", "metadata": {"a": {"nested": 1}}}], 422, "invalid_input"),
    ([{"text": "fine"}, {"image": {"path": "red_circle.png"}, "metadata": {"$bad": 1}}], 422, "invalid_input"),
    ([{"text": "fine"}, {"text": "long id", "id": "x" * 600}], 422, "invalid_input"),
    ([{"text": "x", "unknown": 1}], 422, "invalid_request"),
    ([{"image": {"path": "red_circle.png", "url": "data:image/png;base64,AAAA"}}], 422, "invalid_input"),
    ([{"image": {"path": "red_circle.png", "url": "file:{root}/blue_square.png"}}], 422, "invalid_input"),
    ([{"image": {"path": "red_circle.png", "data": "AAAA"}}], 422, "invalid_input"),
    ([{"image": {}}], 422, "invalid_input"),
    ([], 422, "invalid_input"),
])
def test_bad_adds_change_nothing(fake_model, store, root, tmp_path, items, status, code):
    items = json.loads(json.dumps(items).replace("{root}", str(root)).replace("{tmp}", str(tmp_path)))
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        response = client.post("/v1/collections/shapes/items", json={"items": items})
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert store.collection("shapes", fake_model).count() == 9


def test_upload_limits_and_corrupt_uploads(fake_model, store, root, tmp_path):
    settings = _settings(root, tmp_path, limits=Limits(max_images=2, max_image_bytes=5000, max_pixels=64 * 64,
                                                        max_body_bytes=100_000))
    ok = png_bytes(size=(16, 16))
    cases = [
        ([("file", ("a.png", ok, "image/png"))] * 3, 413, "limit_exceeded"),
        ([("file", ("big.bmp", png_bytes(size=(50, 50), fmt="BMP"), "image/bmp"))], 413, "limit_exceeded"),
        ([("file", ("wide.png", png_bytes(size=(65, 64)), "image/png"))], 413, "image_too_large"),
        ([("file", ("bad.png", b"\x89PNG\r\n\x1a\n garbage", "image/png"))], 422, "image_decode"),
        ([("file", ("cut.png", ok[:50], "image/png"))], 422, "image_decode"),
        ([("file", ("huge.png", b"0" * 200_000, "image/png"))], 413, "limit_exceeded"),
    ]
    with client_for(fake_model, settings, store=store) as client:
        for files, status, code in cases:
            response = client.post("/v1/collections/shapes/items", files=files)
            assert response.status_code == status, (files[0][1][0], response.text)
            assert error_code(response) == code
    assert store.collection("shapes", fake_model).count() == 9


def test_writes_need_the_write_token(fake_model, store, root, tmp_path):
    settings = _settings(root, tmp_path, tokens=frozenset({READ}), write_tokens=frozenset({WRITE}))
    item_id = store.collection("shapes", fake_model).search(text="a red circle", modality="text")[0].id
    with client_for(fake_model, settings, store=store) as client:
        read = {"Authorization": f"Bearer {READ}"}
        write = {"Authorization": f"Bearer {WRITE}"}
        assert client.post("/v1/collections/shapes/search", json={"text": "a"}, headers=read).status_code == 200
        add = {"items": [{"text": "new"}]}
        assert client.post("/v1/collections/shapes/items", json=add).status_code == 401
        assert client.post("/v1/collections/shapes/items", json=add, headers=read).status_code == 403
        assert client.delete(f"/v1/collections/shapes/items/{item_id}", headers=read).status_code == 403
        assert client.post("/v1/collections/shapes/items", json=add, headers=write).status_code == 200
        assert client.delete(f"/v1/collections/shapes/items/{item_id}", headers=write).status_code == 200


# -- thumbnails ------------------------------------------------------------------------------------------------


def test_thumbnails_are_small_cached_and_resolved_by_id_only(fake_model, store, root, tmp_path):
    col = store.collection("shapes", fake_model)
    image_id = col.search(text="x", modality="image", where={"color": "blue"})[0].id
    text_id = col.search(text="x", modality="text")[0].id
    # An item whose file lies outside the server's roots (indexed by someone else, say) is not served.
    outside = col.add_images([tmp_path / "secret.png"]).ids[0]
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        first = client.get(f"/v1/collections/shapes/thumbnails/{image_id}?size=100")
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        thumb = Image.open(io.BytesIO(first.content))
        assert max(thumb.size) == 128 and thumb.getpixel((64, 64))[2] > 150  # the blue square, scaled
        again = client.get(f"/v1/collections/shapes/thumbnails/{image_id}?size=100")
        assert again.content == first.content
        etag = first.headers["etag"]
        assert client.get(f"/v1/collections/shapes/thumbnails/{image_id}?size=100",
                          headers={"If-None-Match": etag}).status_code == 304
        assert client.get(f"/v1/collections/shapes/thumbnails/{text_id}").status_code == 404
        refused = client.get(f"/v1/collections/shapes/thumbnails/{outside}")
        assert refused.status_code == 403 and error_code(refused) == "path_not_allowed"
        assert str(tmp_path) not in refused.text
        for sneaky in ("../../secret.png", "%2e%2e%2fsecret.png", str(tmp_path / "secret.png"), "..%2F..%2Fsecret.png"):
            response = client.get(f"/v1/collections/shapes/thumbnails/{sneaky}")
            assert response.status_code == 404, sneaky  # an id, never a path
        metrics = client.get("/metrics").text
    assert re.search(r'crossmodal_thumbnails_total\{outcome="hit"\} 1\.0', metrics)
    assert re.search(r'crossmodal_thumbnails_total\{outcome="miss"\} 1\.0', metrics)


def test_adding_what_is_stored_already_embeds_nothing_again(fake_model, root, tmp_path):
    from ..helpers import CountingEncoder

    encoder = fake_model.encoder = CountingEncoder(fake_model.encoder)
    store = open_store("memory://")
    green = base64.b64encode((root / "green_triangle.png").read_bytes()).decode()
    items = [{"text": "a note about circles", "metadata": {"kind": "note"}},
             {"image": {"path": "red_circle.png"}},
             {"image": {"data": green}, "id": "my-green"},
             {"image": {"path": "blue_square.png"}, "text": "a blue square, captioned"}]
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        first = client.post("/v1/collections/c/items", json={"items": items})
        assert first.status_code == 200, first.text
        assert sorted(encoder.calls) == [("image", 1), ("image", 2), ("text", 1), ("text", 1)]  # pair: both towers
        encoder.calls.clear()
        again = client.post("/v1/collections/c/items", json={"items": items})
        assert again.status_code == 200, again.text
        assert encoder.calls == []  # same content in the same space: nothing embedded
        assert again.json()["items"] == first.json()["items"] and again.json()["count"] == 4
        items[0]["metadata"] = {"kind": "memo"}  # new metadata only: the stored vector is kept
        changed = client.post("/v1/collections/c/items", json={"items": [*items, {"text": "a new text"}]})
        assert changed.status_code == 200, changed.text
        assert encoder.calls == [("text", 1)]  # only the new text
        assert changed.json()["items"][0]["metadata"] == {"kind": "memo"} and changed.json()["count"] == 5
    col = store.collection("c", fake_model)
    np.testing.assert_allclose(col.get(changed.json()["items"][0]["id"], vector=True).vector,
                               fake_model.embed_texts(["a note about circles"])[0], atol=1e-6)


def test_adding_images_embeds_off_the_store_thread_so_searches_go_on(fake_model, store, root, tmp_path):
    """While an add request's images are in the model, the store still answers other requests."""
    import httpx

    from crossmodal.server import create_app

    from ..helpers import GatedEncoder, live_server

    encoder = fake_model.encoder = GatedEncoder(fake_model.encoder)
    app = create_app(_settings(root, tmp_path), model=fake_model, store=store)
    pictures = [base64.b64encode(png_bytes((i * 40, 10, 10))).decode() for i in range(4)]
    outcome: dict = {}
    with live_server(app) as url:
        def add() -> None:
            outcome["add"] = httpx.post(f"{url}/v1/collections/shapes/items", timeout=60,
                                        json={"items": [{"image": {"data": p}} for p in pictures]})

        worker = threading.Thread(target=add)
        worker.start()
        try:
            assert encoder.entered.wait(30), "the add never reached the model"
            # The model is busy with the add: the store thread is not, so reads and vector searches answer.
            listing = httpx.get(f"{url}/v1/collections", timeout=20)
            found = httpx.post(f"{url}/v1/collections/shapes/search", json={"vector": [0.25] * 16}, timeout=20)
            assert encoder.calls == [("image", 4)] and not encoder.release.is_set()
        finally:
            encoder.release.set()
            worker.join(60)
    assert listing.status_code == 200 and found.status_code == 200
    assert outcome["add"].status_code == 200, outcome["add"].text
    assert store.collection("shapes").count() == 9 + 4


def test_a_file_name_that_is_not_utf8_comes_back_exactly_in_json(fake_model, tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    folder.mkdir()
    raw = folder.as_posix().encode() + b"/bad_\xff.png"
    render("red", "circle", size=64).save(raw.decode("utf-8", "surrogateescape"))
    s = open_store(tmp_path / "store")
    s.collection("odd", fake_model, root=str(folder)).add_images([raw.decode("utf-8", "surrogateescape")])
    with client_for(fake_model, _settings(folder, tmp_path), s) as client:
        response = client.post("/v1/collections/odd/search", json={"text": "a red circle"})
    assert response.status_code == 200, response.text
    response.content.decode("utf-8")  # valid UTF-8 on the wire
    (hit,) = response.json()["hits"]
    assert hit["reference"] == "bad_\udcff.png"
    assert os.fsencode(hit["reference"]) == b"bad_\xff.png"


@pytest.mark.parametrize("using", ["keyword", "hybrid"])
def test_keyword_and_hybrid_search_match_the_library_with_signals_and_highlights(fake_model, store, root, tmp_path,
                                                                                using):
    col = store.collection("shapes", fake_model)
    expected = col.search("yellow circles", using=using, modality="text")
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        response = client.post("/v1/collections/shapes/search",
                               json={"text": "yellow circles", "using": using, "modality": "text"})
        bad = client.post("/v1/collections/shapes/search", json={"like": expected[0].id, "using": using})
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert [(h["id"], round(h["score"], 5)) for h in hits] == [(h.id, round(h.score, 5)) for h in expected]
    top = hits[0]
    assert top["text"] == "a yellow circle" and "keyword" in top["signals"]
    assert [top["text"][s:e] for s, e in top["highlights"]] == ["yellow", "circle"]
    assert bad.status_code == 422 and error_code(bad) == "invalid_input"
    assert schema["SearchRequest"]["properties"]["using"]["enum"] == ["dense", "keyword", "sparse", "hybrid"]
    assert "signals" in schema["Hit"]["properties"] and "highlights" in schema["Hit"]["properties"]


@pytest.mark.parametrize(("using", "rerank"), [("sparse", None), ("hybrid", None), ("keyword", "multivector"),
                                              ("sparse", "multivector"), ("dense", "multivector")])
def test_sparse_and_reranked_search_match_the_library(tmp_path, using, rerank):
    from crossmodal.testing.fake_tokens import fake_token_model

    model = fake_token_model(dim=16, token_dim=8)
    st = open_store("memory://")
    col = st.collection("notes", model)
    col.add_texts(["a yellow circle", "a blue square", "yellow and blue stripes", "a red circle on white"],
                  metadata=[{"n": i} for i in range(4)])
    expected = col.search("yellow circle", using=using, rerank=rerank, where={"n": {"$lt": 3}})
    with client_for(model, ServerSettings(upload_dir=tmp_path / "uploads"), store=st) as client:
        body = {"text": "yellow circle", "using": using, "where": {"n": {"$lt": 3}}}
        response = client.post("/v1/collections/notes/search", json={**body, "rerank": rerank})
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert [(h["id"], round(h["score"], 5)) for h in hits] == [(h.id, round(h.score, 5)) for h in expected]
    assert [h["signals"] for h in hits] == [pytest.approx(dict(h.signals)) for h in expected]
    assert (using == "sparse") <= ("sparse" in hits[0]["signals"]) and (rerank is None) != ("multivector" in hits[0]["signals"])
    assert schema["SearchRequest"]["properties"]["using"]["enum"] == ["dense", "keyword", "sparse", "hybrid"]


def test_sparse_search_of_a_model_without_sparse_output_says_so(fake_model, store, root, tmp_path):
    with client_for(fake_model, _settings(root, tmp_path), store=store) as client:
        sparse = client.post("/v1/collections/shapes/search", json={"text": "circle", "using": "sparse"})
        rerank = client.post("/v1/collections/shapes/search", json={"text": "circle", "rerank": "multivector"})
        no_text = client.post("/v1/collections/shapes/search", json={"like": "x", "rerank": "multivector"})
    assert sparse.status_code == 422 and "sparse output" in sparse.text
    assert rerank.status_code == 422 and "multi-vector output" in rerank.text
    assert no_text.status_code == 422 and "needs text" in no_text.text
