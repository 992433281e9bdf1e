"""The search page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; never a downloaded browser).

A tiny CLIP trained on generated shapes makes the text query meaningful: the
picture of "a yellow circle" must come first for that caption.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crossmodal.server import ServerSettings, create_app
from crossmodal.store import open_store
from crossmodal.testing.shapes import COLORS, SHAPES, caption, render

from ..helpers import live_server

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CROSSMODAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory, trained_model) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("page") / "shapes"
    root.mkdir()
    names = [(c, s) for c in COLORS for s in SHAPES]
    for color, shape in names:
        render(color, shape, size=96).save(root / f"{color}_{shape}.png")
    store = open_store("memory://")
    col = store.collection("shapes", trained_model, root=str(root))
    col.add_images([root / f"{c}_{s}.png" for c, s in names], metadata=[{"color": c, "shape": s} for c, s in names])
    col.add_texts([f"notes on {c} things" for c in COLORS])
    settings = ServerSettings(roots=(root,), upload_dir=root.parent / "uploads")
    with live_server(create_app(settings, model=trained_model, store=store)) as url:
        yield {"url": url, "root": root, "col": col, "names": names}


def _clearest_caption(col, names) -> tuple[str, str]:
    """The caption whose own picture the library ranks first by the widest margin (the model is tiny)."""
    best = None
    for color, shape in names:
        hits = col.search(text=caption(color, shape), modality="image", top_k=2)
        if hits[0].reference == f"{color}_{shape}.png":
            margin = hits[0].score - hits[1].score
            if best is None or margin > best[0]:
                best = (margin, caption(color, shape), hits[0].id)
    assert best is not None, "the trained model matches no caption to its picture"
    return best[1], best[2]


def _card_ids(page) -> list[str]:
    return page.eval_on_selector_all("#results .card", "cards => cards.map(c => c.dataset.id)")


def _wait_results(page, previous: list[str] | None = None) -> list[str]:
    page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0 && "
                           "!document.getElementById('status').textContent.startsWith('Searching')")
    if previous is not None:
        page.wait_for_function("prev => JSON.stringify([...document.querySelectorAll('#results .card')]"
                               ".map(c => c.dataset.id)) !== prev", arg=__import__("json").dumps(previous))
    return _card_ids(page)


def _open(browser, url):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.wait_for_function("() => document.querySelectorAll('#collection option').length > 0")
    assert not page.is_visible("#auth")  # no tokens on this server: no token prompt
    return page, errors


def test_a_text_query_shows_the_matching_picture_first(browser, site):
    query, expected = _clearest_caption(site["col"], site["names"])
    page, errors = _open(browser, site["url"])
    page.select_option("#modality", "image")
    page.fill("#query", query)
    page.press("#query", "Enter")
    ids = _wait_results(page)
    assert ids[0] == expected, (query, ids)
    first = page.locator("#results .card").first
    first.locator("img.thumb").wait_for()
    page.wait_for_function("() => { const i = document.querySelector('#results .card img.thumb');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    assert first.locator(".score").inner_text().startswith(("0.", "1.", "-0."))
    assert page.eval_on_selector("#results .card img.thumb", "i => i.naturalWidth") == 96  # served, via its id
    assert not errors


def test_dropping_an_image_searches_by_it(browser, site):
    col = site["col"]
    dropped = (site["root"] / "green_triangle.png").read_bytes()
    expected = [h.id for h in col.search(image=dropped, top_k=24)]
    page, errors = _open(browser, site["url"])
    handle = page.evaluate_handle(
        """b64 => { const bin = atob(b64); const bytes = new Uint8Array(bin.length);
                    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                    const dt = new DataTransfer();
                    dt.items.add(new File([bytes], 'query.png', {type: 'image/png'})); return dt; }""",
        base64.b64encode(dropped).decode(),
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": handle})
    ids = _wait_results(page)
    assert ids == expected
    assert col.get(ids[0]).reference == "green_triangle.png"
    assert page.locator("#results .card .score").first.inner_text() == "1.000"
    assert page.is_visible("#drop-preview")
    # With text typed too, the same image becomes a pair query.
    page.fill("#query", "a red circle")
    page.press("#query", "Enter")
    pair_ids = _wait_results(page, previous=ids)
    assert pair_ids == [h.id for h in col.search(pair=(dropped, "a red circle"), top_k=24)]
    assert "image +" in page.inner_text("#status")
    assert not errors


def test_more_like_this(browser, site):
    col = site["col"]
    page, errors = _open(browser, site["url"])
    page.select_option("#modality", "image")
    page.fill("#query", "a blue square")
    page.press("#query", "Enter")
    ids = _wait_results(page)
    page.locator("#results .card").nth(1).click()
    like_ids = _wait_results(page, previous=ids)
    expected = [h.id for h in col.search(like=ids[1], modality="image", top_k=24)]
    assert like_ids == expected
    assert ids[1] not in like_ids
    assert page.is_visible("#like-banner")
    clicked = col.get(ids[1]).reference  # the banner and the status name the item by its file, not its id
    assert page.inner_text("#like-label") == clicked
    assert f"more like {clicked}" in page.inner_text("#status") and ids[1] not in page.inner_text("#status")
    scores = [float(s) for s in page.locator("#results .card .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    np.testing.assert_allclose(scores[0], col.search(like=ids[1], modality="image", top_k=1)[0].score, atol=1e-3)
    assert not errors


def test_more_like_a_text_is_labelled_with_its_words(browser, site):
    page, errors = _open(browser, site["url"])
    page.select_option("#modality", "text")
    page.fill("#query", "notes on blue things")
    page.press("#query", "Enter")
    ids = _wait_results(page)
    page.locator("#results .card").first.click()
    _wait_results(page, previous=ids)
    words = site["col"].get(ids[0]).text
    assert page.inner_text("#like-label") == f"“{words}”"
    assert ids[0] not in page.inner_text("#like-banner") + page.inner_text("#status")
    assert not errors


def test_the_page_asks_for_a_token_and_then_works(browser, trained_model, tmp_path):
    token = "t" * 32
    store = open_store("memory://")
    store.collection("notes", trained_model).add_texts(["a red circle", "a blue square"])
    app = create_app(ServerSettings(tokens=frozenset({token})), model=trained_model, store=store)
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.wait_for_selector("#auth", state="visible")
        page.fill("#token", token)
        page.click("#token-save")
        page.wait_for_function("() => document.querySelectorAll('#collection option').length > 0")
        assert not page.is_visible("#auth")
        page.fill("#query", "a red circle")
        page.press("#query", "Enter")
        ids = _wait_results(page)
    assert store.collection("notes").get(ids[0]).text == "a red circle"


def test_keyword_switch_finds_the_word_and_marks_it(browser, site):
    page, errors = _open(browser, site["url"])
    page.select_option("#modality", "text")
    page.select_option("#using", "keyword")
    page.fill("#query", "blue notes")
    page.press("#query", "Enter")
    ids = _wait_results(page)
    expected = [h.id for h in site["col"].search("blue notes", using="keyword", modality="text", top_k=24)]
    assert ids == expected
    marks = page.locator("#results .card").first.locator("mark").all_inner_texts()
    assert site["col"].get(ids[0]).text == "notes on blue things" and marks == ["notes", "blue"]
    assert not errors


def test_hiding_duplicates_and_showing_a_group(browser, trained_model):
    from crossmodal import Record

    store = open_store("memory://")
    col = store.collection("notes", trained_model)
    col.add_texts(["a red circle", "a blue square", "a green triangle", "a yellow circle"])
    first = col.search("a red circle", modality="text", top_k=1)[0]
    vector = col.get(first.id, vector=True).vector
    col.upsert([Record("copy", "text", "a red circle (copy)", vector, text="a red circle (copy)",
                       content_hash="sha256:copy")])  # the same vector, other content: a near duplicate
    with live_server(create_app(ServerSettings(), model=trained_model, store=store)) as url:
        page, errors = _open(browser, url)
        page.fill("#query", "a red circle")
        page.press("#query", "Enter")
        ids = _wait_results(page)
        assert set(ids[:2]) == {first.id, "copy"} and len(ids) == 5
        page.check("#hide-duplicates")
        hidden = _wait_results(page, previous=ids)
        assert hidden == [h.id for h in col.search("a red circle", top_k=24, hide_duplicates=True)]
        assert len(hidden) == 4 and hidden[0] == ids[0]
        page.locator("#results .card").first.locator("button.dups").click()
        page.wait_for_selector("#group-banner", state="visible")
        page.wait_for_function("() => document.querySelectorAll('#results .card').length === 2")
        assert sorted(_card_ids(page)) == sorted([first.id, "copy"])
        assert "2 items, nearly the same" in page.inner_text("#group-label")
        assert page.locator("#results .card .score").all_inner_texts() == ["1.000", "1.000"]
        assert not page.is_visible("#like-banner")  # the button shows the group; it is not a click on the card
        group = _card_ids(page)
        page.click("#group-clear")
        assert _wait_results(page, previous=group) == hidden
        assert not page.is_visible("#group-banner")
        # an item without duplicates says so
        lonely = page.locator("#results .card").nth(1)
        lonely.locator("button.dups").click()
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('No duplicates')")
        assert errors == []
