"""Micro-batching: concurrent requests share model calls, and each gets its own rows, in order."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from crossmodal.errors import ImageDecodeError, InputError
from crossmodal.inputs import Input
from crossmodal.server import BatchingSettings, ServerSettings, create_app
from crossmodal.server.batcher import MicroBatcher
from crossmodal.server.metrics import Metrics

from .helpers import GatedEncoder, image_part, live_server, memory_store, png_bytes


class SlowEncoder:
    """Wraps an encoder so each call takes a while, letting concurrent requests pile up behind it."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def encode_texts(self, inputs):
        time.sleep(self.delay)
        with self.lock:
            self.calls.append(("text", len(inputs["input_ids"])))
        return self.inner.encode_texts(inputs)

    def encode_images(self, pixels):
        time.sleep(self.delay)
        with self.lock:
            self.calls.append(("image", len(pixels)))
        return self.inner.encode_images(pixels)


def _histogram_count(metrics_text: str, name: str) -> float:
    match = re.search(rf"^{name}_count(?:{{[^}}]*}})? ([0-9.e+]+)$", metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


def test_concurrent_clients_get_their_own_vectors_in_order_while_batched(fake_model):
    reference = fake_model.embed_texts  # before slowing it down
    words = [f"w{i}" for i in range(40)]
    expected = {w: reference([w, w + " x", "z " + w]) for w in words}
    fake_model.encoder = SlowEncoder(fake_model.encoder, delay=0.02)
    settings = ServerSettings(batching=BatchingSettings(max_items=64, max_wait_ms=5))
    with live_server(create_app(settings, model=fake_model, store=memory_store())) as url:

        def call(word: str) -> np.ndarray:
            with httpx.Client(base_url=url, timeout=30) as client:
                response = client.post("/v1/embeddings", json={"input": [word, word + " x", "z " + word]})
                assert response.status_code == 200, response.text
                return np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = dict(zip(words, pool.map(call, words)))
        metrics = httpx.get(url + "/metrics").text

    for word in words:
        np.testing.assert_allclose(results[word], expected[word], atol=1e-6, err_msg=word)
    batches = _histogram_count(metrics, "crossmodal_batch_requests")
    assert 0 < batches < len(words), f"{batches} batches for {len(words)} requests: nothing was batched"
    text_calls = [n for kind, n in fake_model.encoder.calls if kind == "text"]
    assert max(text_calls) > 3, f"model calls never held more than one request's texts: {text_calls}"
    assert sum(text_calls) == 3 * len(words)


def test_a_bad_input_fails_only_its_own_request(fake_model):
    fake_model.encoder = SlowEncoder(fake_model.encoder, delay=0.05)
    good, bad = png_bytes(), png_bytes()[:40]
    batcher = MicroBatcher(fake_model, BatchingSettings(max_items=64, max_wait_ms=50), Metrics())
    batcher.start()

    async def run():
        warm = asyncio.create_task(batcher.embed([Input.of(text="warm up")]))
        await asyncio.sleep(0.01)  # the next three queue up behind the slow first call and share one batch
        tasks = [
            batcher.embed([Input.of(image=good), Input.of(text="a")]),
            batcher.embed([Input.of(text="b"), Input.of(image=bad)]),
            batcher.embed([Input.of(text="c", image=good)]),
        ]
        await warm
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        first, second, third = asyncio.run(run())
    finally:
        batcher.stop()
    assert isinstance(second, ImageDecodeError) and str(second).startswith("input[1]")
    np.testing.assert_allclose(first.vectors, np.concatenate([fake_model.embed_images([good]), fake_model.embed_texts(["a"])]),
                               atol=1e-6)
    np.testing.assert_allclose(third.vectors, fake_model.embed_pairs([good], ["c"]), atol=1e-6)
    assert ("text", 2) in fake_model.encoder.calls  # "a" and "b", from two requests, shared one model call


def test_a_lone_client_is_not_delayed_by_the_batch_wait(fake_model):
    # The batch wait is ten minutes: a batcher that waited for company would hold the first request that long,
    # so five requests answered within the two minutes below prove it did not wait, however busy the machine.
    batcher = MicroBatcher(fake_model, BatchingSettings(max_items=64, max_wait_ms=600_000), Metrics())
    batcher.start()

    async def run():
        for _ in range(5):
            await batcher.embed([Input.of(text="alone")])

    try:
        asyncio.run(asyncio.wait_for(run(), timeout=120))
    except TimeoutError:
        pytest.fail("5 sequential requests were not answered in two minutes: each waited for company")
    finally:
        batcher.stop()


def test_images_and_pairs_are_batched_across_requests(fake_model):
    fake_model.encoder = SlowEncoder(fake_model.encoder, delay=0.02)
    colors = [(i * 20, 255 - i * 20, 100) for i in range(12)]
    pictures = [png_bytes(c) for c in colors]
    with live_server(create_app(ServerSettings(), model=fake_model, store=memory_store())) as url:

        def call(i: int) -> np.ndarray:
            body = {"input": [image_part(pictures[i]), [image_part(pictures[i]), {"type": "text", "text": f"t{i}"}]]}
            response = httpx.post(url + "/v1/embeddings", json=body, timeout=30)
            assert response.status_code == 200, response.text
            return np.asarray([d["embedding"] for d in response.json()["data"]], dtype=np.float32)

        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(call, range(12)))
    inner = fake_model.encoder.inner
    fake_model.encoder = inner
    for i, got in enumerate(results):
        np.testing.assert_allclose(got[0], fake_model.embed_images([pictures[i]])[0], atol=1e-6)
        np.testing.assert_allclose(got[1], fake_model.embed_pairs([pictures[i]], [f"t{i}"])[0], atol=1e-6)


def test_an_item_is_a_text_an_image_or_a_pair():
    assert Input.of(text="a").kind == "text"
    assert Input.of(image=b"x").kind == "image"
    assert Input.of(text="a", image=b"x").kind == "pair"
    with pytest.raises(InputError):
        Input.of()


def _big_then_small(fake_model, settings: BatchingSettings, big: list[Input], small: list[Input], monkeypatch):
    """Run a big request, and a small one sent while the model works on the big one's first call.

    Returns how many model calls had been made when each request was answered, the calls, and the answers."""
    from crossmodal.server import batcher as batching

    encoder = fake_model.encoder = GatedEncoder(fake_model.encoder)
    batcher = MicroBatcher(fake_model, settings, Metrics())
    answered: dict[str, int] = {}
    deliver = batching._deliver

    def recorded(request, outcome):  # on the worker thread, as the answer leaves: no race with the next call
        answered["big" if request.items is big else "small"] = len(encoder.calls)
        deliver(request, outcome)

    monkeypatch.setattr(batching, "_deliver", recorded)
    batcher.start()

    async def run():
        first = asyncio.create_task(batcher.embed(big))
        while not encoder.entered.is_set():  # the big request is in the model
            await asyncio.sleep(0.001)
        second = asyncio.create_task(batcher.embed(small))
        await asyncio.sleep(0)  # the small request is queued
        encoder.release.set()
        return await asyncio.gather(first, second)

    try:
        results = asyncio.run(run())
    finally:
        batcher.stop()
    return answered, encoder.calls, results


def test_a_request_of_many_large_images_does_not_hold_up_a_small_one(fake_model, monkeypatch):
    pictures = [png_bytes((i * 30, 0, 0)) for i in range(8)]
    # The images are tiny; their declared size (what the header check found) is what the batcher budgets.
    big = [Input.of(image=p, pixels=40_000_000) for p in pictures]
    reference = fake_model.embed_images(pictures)
    settings = BatchingSettings(max_items=64, max_wait_ms=0, max_pixels=64_000_000)
    answered, calls, (big_result, small_result) = _big_then_small(fake_model, settings, big, [Input.of(text="hi")],
                                                                          monkeypatch)
    assert calls[:3] == [("image", 1), ("image", 1), ("text", 1)]  # the text went in with the second image
    assert answered["small"] == 3 and answered["big"] == len(calls) == 9
    np.testing.assert_allclose(big_result.vectors, reference, atol=1e-6)  # in order, though split over 8 calls
    np.testing.assert_allclose(small_result.vectors, fake_model.embed_texts(["hi"]), atol=1e-6)


def test_a_request_of_many_texts_takes_turns_with_a_small_one(fake_model, monkeypatch):
    texts = [f"word {i}" for i in range(150)]
    settings = BatchingSettings(max_items=64, max_wait_ms=0)
    answered, calls, (big_result, _) = _big_then_small(fake_model, settings, [Input.of(text=t) for t in texts],
                                                       [Input.of(text="hi")], monkeypatch)
    assert calls == [("text", 64), ("text", 64), ("text", 23)]  # 63 of the big one's and the small one's
    assert answered["small"] == 2 and answered["big"] == 3
    np.testing.assert_allclose(big_result.vectors, fake_model.embed_texts(texts), atol=1e-6)


def test_small_images_still_share_a_call_within_the_pixel_budget(fake_model, monkeypatch):
    pictures = [png_bytes((0, i * 30, 0)) for i in range(6)]
    items = [Input.of(image=p, pixels=10_000_000) for p in pictures]  # six fit in 64 Mpx
    settings = BatchingSettings(max_items=64, max_wait_ms=0, max_pixels=64_000_000)
    _, calls, (result, _) = _big_then_small(fake_model, settings, items, [Input.of(image=pictures[0], pixels=5_000_000)],
                                     monkeypatch)
    assert calls == [("image", 6), ("image", 1)]
    np.testing.assert_allclose(result.vectors, fake_model.embed_images(pictures), atol=1e-6)


def test_a_partial_caller_gets_the_good_rows_and_a_failure_per_bad_item(fake_model):
    good, bad = png_bytes(), png_bytes()[:40]
    batcher = MicroBatcher(fake_model, BatchingSettings(), Metrics())
    batcher.start()
    try:
        result = asyncio.run(batcher.embed([Input.of(image=good), Input.of(image=bad), Input.of(text="t")], partial=True))
    finally:
        batcher.stop()
    assert set(result.failures) == {1} and isinstance(result.failures[1], ImageDecodeError)
    np.testing.assert_allclose(result.vectors[[0, 2]], np.concatenate([fake_model.embed_images([good]),
                                                                      fake_model.embed_texts(["t"])]), atol=1e-6)
