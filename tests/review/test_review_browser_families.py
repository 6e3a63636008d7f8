"""The review page for every family's item type in a real headless browser (Debian's chromium, Playwright).

One server mounts each family's queue (`mount_review`); for each item type a reviewer works with the keyboard only
(a checkbox toggled with Space, a value typed and Enter, span markup edited and Ctrl+Enter, a grade digit, a
candidate digit, a rewrite and Ctrl+Enter), the stored value becomes the family's training row, the logged text
shows escaped (it is user input), the page's nonce'd script and style run under its CSP, and a screenshot of each
item type is kept under test-artifacts/.
"""

from __future__ import annotations

import io
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image
from tests.browser_helpers import artifacts_dir
from tests.review.family_seed import ML_LABELS, REVIEWED, SERVED, model_name, seed_family

from tunesmith.review import store
from tunesmith.review.enqueue import enqueue
from tunesmith.review.web import mount_review


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    app = FastAPI()
    for kind in SERVED:
        model = seed_family(url, kind)
        enqueue(url, model, threshold=0.6, random_share=0.0, embed=None, task=kind,
                labels=ML_LABELS if kind == "multi-label" else None)
        mount_review(app, url, model, path=f"/{kind}", reviewer="ana")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/{'regression'}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url, base
    srv.should_exit = True
    thread.join(timeout=10)
    store.dispose(url)


def _submit(page, action) -> None:
    with page.expect_navigation():
        action()


def _review(page, kind: str) -> None:
    """What a reviewer does on the first item of `kind`, with the keyboard (REVIEWED holds the expected row)."""
    keys = page.keyboard
    if kind == "multi-label":
        assert page.is_checked("#check-1") and not page.is_checked("#check-3")  # the model's set: billing
        page.focus("#check-3")
        keys.press("Space")  # shipping too
        _submit(page, lambda: keys.press("Control+Enter"))
    elif kind == "regression":
        assert page.input_value("#value") == "9.5"
        page.fill("#value", "5")
        _submit(page, lambda: page.press("#value", "Enter"))
    elif kind == "token-classification":
        assert page.inner_text("#item-text mark") .startswith("Ada Lovelace")
        assert page.input_value("#markup") == "[Ada Lovelace](PER) met Babbage in London"
        page.fill("#markup", REVIEWED[kind][1]["markup"])
        _submit(page, lambda: page.press("#markup", "Control+Enter"))
    elif kind == "reranking":
        _submit(page, lambda: keys.press("3"))
    elif kind == "embedding":
        assert "Open Settings" in page.inner_text("#label-1") and "reset my password" not in page.inner_text(
            "#candidates")  # the query is no candidate of itself
        _submit(page, lambda: keys.press("1"))
    elif kind == "causal-lm":
        assert "I cannot help" in page.inner_text("#item-text") and "thumbs down" in page.inner_text("#item")
        page.fill("#correction", REVIEWED[kind][1]["correction"])
        _submit(page, lambda: page.press("#correction", "Control+Enter"))


@pytest.mark.parametrize("kind", list(SERVED))
def test_every_item_type_is_reviewed_with_the_keyboard_in_a_real_browser(server, browser, kind):
    url, base = server
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    csp_errors = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{base}/{kind}/")
    item = int(page.get_attribute("#item", "data-item-id"))
    widget = page.get_attribute("#item", "data-widget")
    from tunesmith.families import get

    assert widget == get(kind).review.widget
    if kind in ("multi-label", "regression"):  # logged markup shows as text, never as markup
        shown = page.inner_text("#item-text")
        assert "<b>now</b>" in shown or "<script>" in shown
    shot = artifacts_dir() / f"review-{kind}.png"
    page.screenshot(path=str(shot), full_page=True)
    _check_rendered(shot.read_bytes())

    _review(page, kind)
    assert "saved" in page.inner_text("#flash"), page.inner_text("main")
    reviewed = {r["item_id"]: r for r in store.reviewed_labels(url, model_name(kind)) if "item_id" in r}
    assert reviewed[item]["row"] == REVIEWED[kind][2] and reviewed[item]["labeled_by"] == "ana"
    assert csp_errors == []


def _check_rendered(png: bytes) -> None:
    """Not a golden image: painted pixels, many colours (text, buttons) and the dark blue header bar."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    header = pixels[:30].mean(axis=(0, 1))
    assert header[2] > header[0] + 20
