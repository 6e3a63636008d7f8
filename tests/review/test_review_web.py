"""The review page over HTTP (no browser): forms, reviewer, double submits, token login, mounting at /review.

Every POST carries the page's CSRF token (tests/security/test_security_review.py checks what happens without it).
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.review.seed import LABELS, MODEL, seed

from tunesmith.review import store
from tunesmith.review.enqueue import enqueue
from tunesmith.review.web import create_review_app, mount_review
from tunesmith.serving.app import OPEN_ROUTES
from tunesmith.serving.middleware import RequestContext


@pytest.fixture()
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    enqueue(url, MODEL, label_issues_file=seed(url, tmp_path), embed=None)
    yield url
    store.dispose(url)


def _item_id(html: str) -> int:
    return int(html.split("data-item-id='")[1].split("'")[0])


def _csrf(html: str) -> str:
    return re.search(r"name='csrf' value='([0-9a-f]+)'", html).group(1)


def test_page_labels_accept_relabel_skip_undo(db):
    client = TestClient(create_review_app(db, MODEL, labels=LABELS, reviewer="ana"))
    page = client.get("/")
    assert page.status_code == 200 and "<b id='reviewer-name'>ana</b>" in page.text
    first, csrf = _item_id(page.text), _csrf(page.text)
    assert "id='label-1'" in page.text and "id='label-3'" in page.text and "id='accept'" in page.text
    res = client.post("/label", data={"item_id": first, "choice": "accept", "csrf": csrf})
    assert res.status_code == 200 and "saved accept" in res.text  # followed the 303 to the next item
    second = _item_id(res.text)
    assert second != first and "1 / 6 reviewed by you" in res.text
    client.post("/label", data={"item_id": second, "choice": "label:neu", "csrf": csrf})
    client.post("/label", data={"item_id": second, "choice": "label:neu", "csrf": csrf})  # double submit
    rows = [r for r in store.label_rows(db, MODEL) if r["item_id"] == second]
    assert len(rows) == 1 and rows[0]["label"] == "neu" and rows[0]["reviewer"] == "ana"
    assert rows[0]["action"] == ("accept" if rows[0]["guess"] == "neu" else "relabel")
    third = _item_id(client.get("/").text)
    client.post("/label", data={"item_id": third, "choice": "skip", "csrf": csrf})
    res = client.post("/undo", data={"csrf": csrf})
    assert _item_id(res.text) == third and f"undid your label on item {third}" in res.text
    assert store.progress(db, MODEL, reviewer="ana")["mine"] == 2


def test_no_token_no_reviewer_reviews_as_the_os_user(db):
    from tunesmith.review.web import default_reviewer

    page = TestClient(create_review_app(db, MODEL, labels=LABELS)).get("/")
    assert f"<b id='reviewer-name'>{default_reviewer()}</b>" in page.text and "id='item'" in page.text


def test_bad_posts_get_clear_errors(db):
    client = TestClient(create_review_app(db, MODEL, reviewer="ana"))
    csrf = _csrf(client.get("/").text)
    bad_choice = client.post("/label", data={"item_id": 1, "choice": "maybe", "csrf": csrf})
    assert bad_choice.status_code == 400 and "choice" in bad_choice.json()["error"]["message"]
    missing = client.post("/label", data={"item_id": 999, "choice": "accept", "csrf": csrf})
    assert missing.status_code == 404
    # the shared token over the API: the caller names the reviewer with x-reviewer
    api = TestClient(create_review_app(db, MODEL, token="s3cret"))
    no_name = api.post("/label", data={"item_id": 1, "choice": "accept"}, headers={"Authorization": "Bearer s3cret"})
    assert no_name.status_code == 400 and "reviewer" in no_name.json()["error"]["message"]
    assert store.label_rows(db, MODEL) == []
    named = api.post("/label", data={"item_id": 1, "choice": "skip"},
                     headers={"Authorization": "Bearer s3cret", "x-reviewer": "cy"})
    assert named.status_code == 200 and [r["reviewer"] for r in store.label_rows(db, MODEL)] == ["cy"]


def test_token_login_cookie(db):
    client = TestClient(create_review_app(db, MODEL, token="s3cret"))
    assert client.get("/healthz").status_code == 200
    redirect = client.get("/", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login"
    assert client.get("/api/progress").status_code == 401
    csrf = _csrf(client.get("/login").text)
    assert client.post("/login", data={"token": "wrong", "csrf": csrf}).status_code == 401
    assert client.get("/api/progress", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    page = client.post("/login", data={"token": "s3cret", "csrf": csrf})  # cookie set, then the page
    assert page.status_code == 200 and "id='reviewer-form'" in page.text  # the shared token: name yourself
    assert client.get("/api/progress").json()["total"] == 6


def test_mounted_under_the_serving_apps_auth_at_review(db):
    app = FastAPI()
    mount_review(app, db, MODEL, token="s3cret")
    # the serving app's own middleware, as create_app installs it: /review/login is open, the cookie is accepted
    app.add_middleware(RequestContext, token="s3cret", token_env="T", open_paths=OPEN_ROUTES)
    client = TestClient(app)
    assert client.get("/review/", follow_redirects=False).status_code == 401
    login = client.get("/review/login")
    assert login.status_code == 200 and "action='/review/login'" in login.text
    page = client.post("/review/login", data={"token": "s3cret", "csrf": _csrf(login.text)}, follow_redirects=True)
    assert page.status_code == 200 and "action='/review/reviewer'" in page.text
    page = client.post("/review/reviewer", data={"reviewer": "ana", "csrf": _csrf(page.text)})
    item = _item_id(page.text)
    assert "action='/review/label'" in page.text
    res = client.post("/review/label", data={"item_id": item, "choice": "label:pos", "csrf": _csrf(page.text)})
    assert res.status_code == 200 and store.label_rows(db, MODEL)[0]["label"] == "pos"
    assert store.label_rows(db, MODEL)[0]["reviewer"] == "ana"
    assert client.get("/review/agreement").status_code == 200
