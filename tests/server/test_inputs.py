"""Every request limit answers 413 or 422 with a message naming the limit; corrupt images are refused cleanly."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from crossmodal.server import Limits, ServerSettings

from .helpers import client_for, error_code, image_part, png_bytes

LIMITS = Limits(max_body_bytes=200_000, max_images=3, max_image_bytes=50_000, max_pixels=100 * 100, max_texts=5,
                max_chars=50)


def _post(client, inputs, **kw):
    return client.post("/v1/embeddings", json={"input": inputs}, **kw)


@pytest.mark.parametrize("case, status, code, words", [
    ("too many texts", 413, "limit_exceeded", "6 texts, over the limit of 5"),
    ("too many images", 413, "limit_exceeded", "4 images, over the limit of 3"),
    ("too many pixels", 413, "image_too_large", "over the limit of 10,000"),
    ("too many bytes in one image", 413, "limit_exceeded", "per image"),
    ("text too long", 413, "limit_exceeded", "51 characters, over this server's limit of 50 per text (--max-chars)"),
    ("body too big", 413, "limit_exceeded", "over the limit of 200,000 bytes per request"),
])
def test_limits(fake_model, case, status, code, words):
    small = png_bytes(size=(10, 10))
    inputs = {
        "too many texts": ["t"] * 6,
        "too many images": [image_part(small)] * 4,
        "too many pixels": [image_part(png_bytes(size=(101, 100)))],
        "too many bytes in one image": [image_part(_noise_png(160))],
        "text too long": ["ok", "x" * 51],
        "body too big": ["y" * 40] * 6000,
    }[case]
    with client_for(fake_model, ServerSettings(limits=LIMITS)) as client:
        response = _post(client, inputs)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert words in response.json()["error"]["message"]


def test_limits_at_the_edge_pass(fake_model):
    with client_for(fake_model, ServerSettings(limits=LIMITS)) as client:
        response = _post(client, ["t" * 50] * 2 + [image_part(png_bytes(size=(100, 100)))] * 3)
    assert response.status_code == 200, response.text


def test_a_chunked_body_over_the_cap_is_refused_while_streaming(fake_model):
    def chunks():
        yield b'{"input": ["'
        for _ in range(100):
            yield b"z" * 10_000
        yield b'"]}'

    with client_for(fake_model, ServerSettings(limits=LIMITS)) as client:
        response = client.post("/v1/embeddings", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and error_code(response) == "limit_exceeded"


def _noise_png(side: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _bomb() -> bytes:
    """A tiny PNG whose header claims 30000 x 30000 pixels (no pixel data needed to trip the guard)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name, data, code", [
    ("not an image", b"hello, I am text", "image_decode"),
    ("truncated png", png_bytes(size=(64, 64))[:60], "image_decode"),
    ("empty", b"", "image_decode"),
    ("decompression bomb", None, "image_too_large"),
])
def test_corrupt_images_are_refused_with_their_position(fake_model, name, data, code):
    data = _bomb() if data is None else data
    with client_for(fake_model) as client:
        response = _post(client, ["fine", image_part(data)])
    assert response.status_code in (413, 422), response.text
    assert error_code(response) == code
    assert response.json()["error"]["message"].startswith("input[1]")


# -- the pixel budget of a request ----------------------------------------------------------------------------------

BUDGET = Limits(max_pixels=100 * 100, max_request_pixels=3 * 100 * 100)


def test_the_images_of_one_request_share_a_pixel_budget(fake_model):
    big = png_bytes(size=(100, 100))
    with client_for(fake_model, ServerSettings(limits=BUDGET)) as client:
        assert _post(client, [image_part(big)] * 3).status_code == 200  # exactly the budget
        over = _post(client, [image_part(big)] * 3 + [[image_part(png_bytes(size=(1, 1))), {"type": "text", "text": "a"}]])
    assert over.status_code == 413 and error_code(over) == "limit_exceeded"
    assert "30,001 pixels in all, over the limit of 30,000 per request" in over.json()["error"]["message"]


def test_adding_images_over_the_pixel_budget_stores_and_keeps_nothing(fake_model, tmp_path):
    from .helpers import memory_store

    big = png_bytes(size=(100, 100))
    store = memory_store()
    uploads = tmp_path / "uploads"
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "big.png").write_bytes(big)
    settings = ServerSettings(limits=BUDGET, upload_dir=uploads, roots=(tmp_path / "root",))
    items = [{"image": {"data": base64.b64encode(big).decode()}}] * 2 + [{"image": {"path": "big.png"}, "text": "x"}] * 2
    with client_for(fake_model, settings, store=store) as client:
        as_json = client.post("/v1/collections/c/items", json={"items": items})
        as_form = client.post("/v1/collections/c/items", files=[("file", (f"{i}.png", big, "image/png")) for i in range(4)])
        assert not (uploads.exists() and any(uploads.iterdir()))  # no upload kept for a refused request
        fits = client.post("/v1/collections/c/items", json={"items": items[1:]})
    for response in (as_json, as_form):
        assert response.status_code == 413 and error_code(response) == "limit_exceeded", response.text
        assert "40,000 pixels in all, over the limit of 30,000 per request" in response.json()["error"]["message"]
    assert fits.status_code == 200, fits.text
    assert store.collection("c").count() == 2  # the upload and the pair (the same pair twice is one item)
