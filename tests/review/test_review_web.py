"""The review page over HTTP (no browser): forms, reviewer, double submits, token login, mounting at /review."""

from __future__ import annotations

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


def test_page_labels_accept_relabel_skip_undo(db):
    client = TestClient(create_review_app(db, MODEL, labels=LABELS))
    assert "id='reviewer-form'" in client.get("/").text  # no reviewer yet: asks for a name
    page = client.get("/", params={"reviewer": "ana"})
    assert page.status_code == 200 and client.cookies.get("tunesmith_reviewer") == "ana"
    first = _item_id(page.text)
    assert "id='label-1'" in page.text and "id='label-3'" in page.text and "id='accept'" in page.text
    res = client.post("/label", data={"item_id": first, "choice": "accept"})  # reviewer from the cookie
    assert res.status_code == 200 and "saved accept" in res.text  # followed the 303 to the next item
    second = _item_id(res.text)
    assert second != first and "1 / 6 reviewed by you" in res.text
    client.post("/label", data={"item_id": second, "choice": "label:neu", "reviewer": "ana"})
    client.post("/label", data={"item_id": second, "choice": "label:neu", "reviewer": "ana"})  # double submit
    rows = [r for r in store.label_rows(db, MODEL) if r["item_id"] == second]
    assert len(rows) == 1 and rows[0]["label"] == "neu"
    assert rows[0]["action"] == ("accept" if rows[0]["guess"] == "neu" else "relabel")
    third = _item_id(client.get("/").text)
    client.post("/label", data={"item_id": third, "choice": "skip"})
    res = client.post("/undo")
    assert _item_id(res.text) == third and f"undid your label on item {third}" in res.text
    assert store.progress(db, MODEL, reviewer="ana")["mine"] == 2


def test_bad_posts_get_clear_errors(db):
    client = TestClient(create_review_app(db, MODEL))
    no_name = client.post("/label", data={"item_id": 1, "choice": "accept"})
    assert no_name.status_code == 400 and "reviewer" in no_name.json()["error"]["message"]
    bad_choice = client.post("/label", data={"item_id": 1, "choice": "maybe", "reviewer": "ana"})
    assert bad_choice.status_code == 400 and "choice" in bad_choice.json()["error"]["message"]
    missing = client.post("/label", data={"item_id": 999, "choice": "accept", "reviewer": "ana"})
    assert missing.status_code == 404
    assert store.label_rows(db, MODEL) == []


def test_token_login_cookie(db):
    client = TestClient(create_review_app(db, MODEL, token="s3cret"))
    assert client.get("/healthz").status_code == 200
    redirect = client.get("/", follow_redirects=False)
    assert redirect.status_code == 303 and redirect.headers["location"] == "/login"
    assert client.get("/api/progress").status_code == 401
    assert client.post("/login", data={"token": "wrong"}).status_code == 401
    assert client.get("/api/progress", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/login", data={"token": "s3cret"}).status_code == 200  # cookie set, then the page
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
    page = client.post("/review/login", data={"token": "s3cret"}, follow_redirects=True)
    assert page.status_code == 200 and "action='/review/'" in page.text
    page = client.get("/review/", params={"reviewer": "ana"})
    item = _item_id(page.text)
    assert "action='/review/label'" in page.text
    res = client.post("/review/label", data={"item_id": item, "choice": "label:pos"})
    assert res.status_code == 200 and store.label_rows(db, MODEL)[0]["label"] == "pos"
    assert client.get("/review/agreement").status_code == 200
