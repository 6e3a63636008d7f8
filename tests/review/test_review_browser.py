"""The review page in a real headless browser (Debian's chromium driven by Playwright).

Two reviewers sign in with their own tokens ($TUNESMITH_REVIEW_TOKENS); keyboard shortcuts label items (each
form carries its CSRF token, the CSP lets the page's nonce'd script and style run), the database holds every label, a hard-killed server comes back with nothing
lost, a second reviewer's disagreement shows on the agreement view, the export carries reviewer and time, and
a screenshot shows the page actually rendered.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image
from tests.review.seed import MODEL, seed

from tunesmith.data.load import load_table
from tunesmith.review import store
from tunesmith.review.enqueue import enqueue

TOKENS = {"ana": "ana-browser-token-0123", "ben": "ben-browser-token-4567"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "TUNESMITH_REVIEW_TOKENS": ",".join(f"{k}={v}" for k, v in TOKENS.items())}
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "review", "--model", MODEL, "--db", url,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    for _ in range(600):  # readiness: the process imports the CLI first
        if proc.poll() is not None:
            raise AssertionError(f"review server exited: {proc.stdout.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("review server did not come up")


def _press(page, key: str) -> None:
    with page.expect_navigation():  # each shortcut posts a form; the server redirects to the next item
        page.keyboard.press(key)


def _sign_in(page, base: str, reviewer: str) -> None:
    page.goto(base + "/")  # not signed in: redirected to the login form
    page.fill("#token", TOKENS[reviewer])
    with page.expect_navigation():
        page.press("#token", "Enter")


def _item(page) -> int:
    return int(page.get_attribute("#item", "data-item-id"))


def test_review_page_in_a_real_browser(tmp_path, browser):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    enqueue(url, MODEL, label_issues_file=seed(url, tmp_path), embed=None)
    store.dispose(url)
    port = _free_port()
    server = _start(url, port)
    base = f"http://127.0.0.1:{port}"
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        csp_errors = []
        page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
        _sign_in(page, base, "ana")
        assert page.inner_text("#reviewer-name") == "ana"
        first, guess, first_text = _item(page), page.inner_text("#guess"), page.inner_text("#item-text")
        assert page.inner_text("#progress").startswith("0 / 6")
        assert page.inner_text("#confidence").endswith("%")
        bar = page.locator(".bar span").bounding_box()  # its width comes from the page's nonce'd <style>
        assert bar is not None and bar["width"] > 1
        labels = [page.get_attribute(f"#label-{i}", "data-label") for i in (1, 2, 3)]
        assert labels == ["neg", "neu", "pos"]

        _press(page, "a")  # accept the guess
        assert "saved accept" in page.inner_text("#flash") and page.inner_text("#progress").startswith("1 / 6")
        second = _item(page)
        _press(page, "2")  # pick label 2 (neu)
        third = _item(page)
        _press(page, "s")  # skip
        _press(page, "u")  # undo the skip: the skipped item comes back
        assert _item(page) == third and f"undid your label on item {third}" in page.inner_text("#flash")
        _press(page, "Enter")  # accept
        assert page.inner_text("#progress").startswith("3 / 6")
        fourth = _item(page)

        live = {r["item_id"]: r for r in store.label_rows(url, MODEL)}
        assert set(live) == {first, second, third}
        assert live[first]["label"] == guess and live[first]["action"] == "accept"
        assert live[second]["label"] == "neu" and live[third]["action"] == "accept"
        assert all(r["reviewer"] == "ana" for r in live.values())
        undone = [r for r in store.label_rows(url, MODEL, include_undone=True) if r["undone_at"] is not None]
        assert [(r["item_id"], r["action"]) for r in undone] == [(third, "skip")]  # kept for the audit trail

        shot = tmp_path / "review.png"  # REVIEW_SCREENSHOT=path keeps a copy to look at
        page.screenshot(path=str(shot))
        _check_rendered(page, shot.read_bytes())
        assert csp_errors == []  # the page's own script and style run under its CSP
        if os.environ.get("REVIEW_SCREENSHOT"):
            shutil.copy(shot, os.environ["REVIEW_SCREENSHOT"])

        server.kill()  # a hard kill: nothing buffered may be lost
        server.wait()
        store.dispose(url)
        server = _start(url, port)
        page.reload()
        assert page.inner_text("#progress").startswith("3 / 6") and _item(page) == fourth
        assert {r["item_id"] for r in store.reviewed_labels(url, MODEL)} == {first, second, third}

        ben = browser.new_context().new_page()  # a second reviewer, own cookies, own token
        _sign_in(ben, base, "ben")
        assert ben.inner_text("#reviewer-name") == "ben" and _item(ben) == first
        other = next(i for i in ("1", "2", "3") if labels[int(i) - 1] != guess)
        _press(ben, other)
        ben.goto(base + "/agreement")
        assert "ana & ben" in ben.inner_text("#pairs") and "0.0%" in ben.inner_text("#pairs")
        assert first_text in ben.inner_text("#disagreements")

        out = tmp_path / "reviewed.jsonl"
        done = subprocess.run([sys.executable, "-m", "tunesmith.cli", "review", "export", "--model", MODEL,
                               "--db", url, "-o", str(out)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        rows = {r["item_id"]: r for r in map(json.loads, out.read_text().splitlines())}
        assert set(rows) == {first, second, third}
        # a 1-1 tie between ana and ben: the label given last (ben's) wins
        assert rows[first]["label"] == labels[int(other) - 1] and rows[first]["labeled_by"] == "ben"
        assert rows[second]["labeled_by"] == "ana" and rows[second]["labeled_at"].endswith("+00:00")
        table = load_table("data.train", out)  # the export is a dataset file tunesmith reads as it is
        assert len(table.frame) == 3 and {"text", "label", "labeled_by", "labeled_at"} <= set(table.frame.columns)
    finally:
        server.kill()
        server.wait()
        store.dispose(url)


def _check_rendered(page, png: bytes) -> None:
    """Not a golden image: the key elements have visible boxes and the pixels are not a blank page."""
    viewport = page.viewport_size
    for selector in ("#item-text", "#guess", "#confidence", "#accept", "#label-1", "#skip", "#progress"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["width"] > 5 and box["height"] > 5, selector
        assert 0 <= box["x"] < viewport["width"] and 0 <= box["y"] < viewport["height"], selector
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    assert pixels.shape[:2] == (viewport["height"], viewport["width"])
    assert pixels.std() > 20  # a blank or single-colour page is ~0
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > 50  # text anti-aliasing, the header bar, buttons
    header = pixels[:30].mean(axis=(0, 1))
    assert header[2] > header[0] + 20  # the dark blue header bar painted (CSS applied, not unstyled HTML)
