"""Security of the review page (finding 9): CSRF token + Origin check on every POST, anti-framing headers and CSP,
labels checked against the model's classes, and the reviewer taken from the signed-in session, not the form.

Each test fails on the page as it was (a cross-site POST /label was stored, no headers, `label:not_a_class`
stored, anyone could undo anyone's label) and passes now.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from tests.review.seed import LABELS, MODEL, seed

from tunesmith.review import store
from tunesmith.review.enqueue import enqueue
from tunesmith.review.web import create_review_app

ANA, BEN = "ana-token-0123456789", "ben-token-0123456789"


@pytest.fixture()
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    enqueue(url, MODEL, label_issues_file=seed(url, tmp_path), embed=None)
    yield url
    store.dispose(url)


def _csrf(html: str) -> str:
    return re.search(r"name='csrf' value='([0-9a-f]+)'", html).group(1)


def _item_id(html: str) -> int:
    return int(html.split("data-item-id='")[1].split("'")[0])


def _signed_in(db, token: str, **kw) -> TestClient:
    client = TestClient(create_review_app(db, MODEL, labels=LABELS, reviewer_tokens={"ana": ANA, "ben": BEN}, **kw))
    login = client.get("/login")
    page = client.post("/login", data={"token": token, "csrf": _csrf(login.text)})
    assert page.status_code == 200 and "id='item'" in page.text
    return client


def test_cross_site_post_without_token_is_refused(db):
    """No token configured (local use): a POST from another site, or one without the page's CSRF token, is 403."""
    client = TestClient(create_review_app(db, MODEL, labels=LABELS, reviewer="ana"))
    page = client.get("/")
    item, csrf = _item_id(page.text), _csrf(page.text)
    # what a malicious page's auto-submitting form sends: the browser adds its Origin, not the CSRF token
    evil = client.post("/label", data={"item_id": item, "choice": "label:neg"},
                       headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    # even with a stolen-looking token, a foreign Origin (or Referer when Origin is absent) is refused
    assert client.post("/label", data={"item_id": item, "choice": "label:neg", "csrf": csrf},
                       headers={"origin": "https://evil.example"}).status_code == 403
    assert client.post("/label", data={"item_id": item, "choice": "label:neg", "csrf": csrf},
                       headers={"referer": "https://evil.example/page"}).status_code == 403
    assert client.post("/label", data={"item_id": item, "choice": "label:neg", "csrf": csrf},
                       headers={"origin": "null"}).status_code == 403
    # a missing or wrong CSRF token from the page's own origin: refused too
    assert client.post("/label", data={"item_id": item, "choice": "label:neg"}).status_code == 403
    assert client.post("/label", data={"item_id": item, "choice": "label:neg", "csrf": "0" * 64}).status_code == 403
    assert client.post("/undo", data={}).status_code == 403
    # another browser session's token does not work in this one (the token is bound to the session cookie)
    other = TestClient(create_review_app(db, MODEL, labels=LABELS, reviewer="ana"))
    other.get("/")
    assert other.post("/label", data={"item_id": item, "choice": "label:neg", "csrf": csrf}).status_code == 403
    assert store.label_rows(db, MODEL) == []
    # the page's own form, from its own origin, works
    ok = client.post("/label", data={"item_id": item, "choice": "label:neg", "csrf": csrf},
                     headers={"origin": "http://testserver"})
    assert ok.status_code == 200 and "saved" in ok.text
    assert [(r["label"], r["reviewer"]) for r in store.label_rows(db, MODEL)] == [("neg", "ana")]


def test_login_form_is_csrf_and_origin_protected(db):
    client = TestClient(create_review_app(db, MODEL, token="s3cret-s3cret"))
    csrf = _csrf(client.get("/login").text)
    assert client.post("/login", data={"token": "s3cret-s3cret"}).status_code == 403
    assert client.post("/login", data={"token": "s3cret-s3cret", "csrf": csrf},
                       headers={"origin": "https://evil.example"}).status_code == 403
    assert client.post("/login", data={"token": "s3cret-s3cret", "csrf": csrf}).status_code == 200


def test_host_header_allow_list_stops_dns_rebinding(db):
    client = TestClient(create_review_app(db, MODEL, reviewer="ana", allowed_hosts=["127.0.0.1", "localhost"]))
    assert client.get("/", headers={"host": "evil.example"}).status_code == 403
    assert client.get("/", headers={"host": "127.0.0.1:8100"}).status_code == 200


def test_every_page_refuses_framing_and_sets_a_csp(db):
    client = TestClient(create_review_app(db, MODEL, labels=LABELS, reviewer="ana"))
    for path in ("/", "/agreement", "/login", "/api/progress", "/healthz"):
        res = client.get(path)
        assert res.headers["x-frame-options"] == "DENY", path
        assert res.headers["x-content-type-options"] == "nosniff", path
        csp = res.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
    page = client.get("/")
    nonce = re.search(r"script-src 'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    assert f"<script nonce='{nonce}'>" in page.text and f"<style nonce='{nonce}'>" in page.text
    assert " style=" not in page.text  # no inline style attribute (the CSP would block it)
    # the nonce is fresh on every response
    assert nonce not in client.get("/").headers["content-security-policy"]


def test_unknown_label_is_422_and_not_stored(db):
    client = TestClient(create_review_app(db, MODEL, labels=LABELS, reviewer="ana"))
    page = client.get("/")
    res = client.post("/label", data={"item_id": _item_id(page.text), "choice": "label:not_a_class",
                                      "csrf": _csrf(page.text)})
    assert res.status_code == 422
    message = res.json()["error"]["message"]
    assert "not_a_class" in message and all(lab in message for lab in LABELS)
    assert store.label_rows(db, MODEL, include_undone=True) == []
    assert store.reviewed_labels(db, MODEL) == []  # nothing flows to export / retraining


def test_unknown_label_refused_with_labels_seen_in_the_queue(db):
    """Without configured labels, the valid ones are the model's classes seen in the queue (guesses, scores)."""
    client = TestClient(create_review_app(db, MODEL, reviewer="ana"))
    page = client.get("/")
    res = client.post("/label", data={"item_id": _item_id(page.text), "choice": "label:not_a_class",
                                      "csrf": _csrf(page.text)})
    assert res.status_code == 422 and "neg, neu, pos" in res.json()["error"]["message"]
    assert store.label_rows(db, MODEL) == []


def test_accepting_a_guess_outside_the_configured_labels_is_422(db):
    client = TestClient(create_review_app(db, MODEL, labels=["neg", "pos"], reviewer="ana"))
    while True:  # skip to an item whose guess is not a configured class
        page = client.get("/")
        item = store.get_item(db, _item_id(page.text))
        if item["guess"] not in ("neg", "pos"):
            break
        client.post("/label", data={"item_id": item["id"], "choice": "skip", "csrf": _csrf(page.text)})
    res = client.post("/label", data={"item_id": item["id"], "choice": "accept", "csrf": _csrf(page.text)})
    assert res.status_code == 422 and "neg, pos" in res.json()["error"]["message"]
    assert all(r["action"] == "skip" for r in store.label_rows(db, MODEL))


def test_reviewer_comes_from_the_token_not_the_form(db):
    ana = _signed_in(db, ANA)
    page = ana.get("/")
    assert "<b id='reviewer-name'>ana</b>" in page.text and "name='reviewer'" not in page.text
    item, csrf = _item_id(page.text), _csrf(page.text)
    # ana's session cannot label as ben, by form field, query or header
    assert ana.post("/label", data={"item_id": item, "choice": "label:pos", "csrf": csrf,
                                    "reviewer": "ben"}).status_code == 403
    assert ana.post("/label", data={"item_id": item, "choice": "label:pos", "csrf": csrf},
                    headers={"x-reviewer": "ben"}).status_code == 403
    assert ana.get("/", params={"reviewer": "ben"}).text.count("<b id='reviewer-name'>ana</b>") == 1
    assert store.label_rows(db, MODEL) == []
    ana.post("/label", data={"item_id": item, "choice": "label:pos", "csrf": csrf})
    # a bearer-token API client is its token's reviewer too
    api = TestClient(ana.app)
    res = api.post("/label", data={"item_id": item, "choice": "label:neg"}, headers={"authorization": f"Bearer {BEN}"})
    assert res.status_code == 200
    assert {(r["reviewer"], r["label"]) for r in store.label_rows(db, MODEL)} == {("ana", "pos"), ("ben", "neg")}
    assert api.post("/label", data={"item_id": item, "choice": "label:neu"},
                    headers={"authorization": f"Bearer {BEN}", "x-reviewer": "ana"}).status_code == 403
    assert api.post("/label", data={"item_id": item, "choice": "label:neu"},
                    headers={"authorization": "Bearer nope"}).status_code == 401


def test_undo_only_ones_own_labels(db):
    ana, ben = _signed_in(db, ANA), _signed_in(db, BEN)
    page = ana.get("/")
    item = _item_id(page.text)
    ana.post("/label", data={"item_id": item, "choice": "label:pos", "csrf": _csrf(page.text)})
    ben_page = ben.get("/")
    ben_csrf = _csrf(ben_page.text)
    # ben cannot undo ana's label: not by naming her, not by naming her item
    assert ben.post("/undo", data={"reviewer": "ana", "csrf": ben_csrf}).status_code == 403
    assert ben.post("/undo", data={"item_id": item, "csrf": ben_csrf}).status_code == 403
    res = ben.post("/undo", data={"csrf": ben_csrf})  # his own: nothing to undo
    assert res.status_code == 200 and "nothing to undo" in res.text
    assert [(r["reviewer"], r["undone_at"]) for r in store.label_rows(db, MODEL, include_undone=True)] == [("ana", None)]
    res = ana.post("/undo", data={"item_id": item, "csrf": _csrf(ana.get("/").text)})
    assert res.status_code == 200 and f"undid your label on item {item}" in res.text
    assert store.label_rows(db, MODEL) == []


def test_shared_token_reviewer_is_bound_to_the_session(db):
    """The one shared (serving) token: each reviewer names themself once; the form cannot change it afterwards."""
    client = TestClient(create_review_app(db, MODEL, labels=LABELS, token="s3cret-s3cret"))
    page = client.post("/login", data={"token": "s3cret-s3cret", "csrf": _csrf(client.get("/login").text)})
    assert "id='reviewer-form'" in page.text
    # naming oneself is a CSRF-protected POST, not a GET link another site could plant
    assert client.post("/reviewer", data={"reviewer": "ana"}).status_code == 403
    page = client.post("/reviewer", data={"reviewer": "ana", "csrf": _csrf(page.text)})
    assert "<b id='reviewer-name'>ana</b>" in page.text
    item, csrf = _item_id(page.text), _csrf(page.text)
    assert client.post("/label", data={"item_id": item, "choice": "label:pos", "csrf": csrf,
                                       "reviewer": "ben"}).status_code == 403
    client.post("/label", data={"item_id": item, "choice": "label:pos", "csrf": csrf})
    assert [r["reviewer"] for r in store.label_rows(db, MODEL)] == ["ana"]
    # a forged name cookie (not signed with the token) is not a reviewer
    forged = TestClient(client.app)
    forged.cookies.set("tunesmith_token", "s3cret-s3cret")
    forged.cookies.set("tunesmith_reviewer", "YmVu.deadbeef")
    assert "id='reviewer-form'" in forged.get("/").text


def test_reviewer_tokens_are_parsed_and_checked():
    from tunesmith.review.web import parse_reviewer_tokens

    assert parse_reviewer_tokens(f"ana={ANA}, ben={BEN}") == {"ana": ANA, "ben": BEN}
    for bad in ("ana", f"ana={ANA},ana={BEN}", f"ana={ANA},ben={ANA}", "ana=short", f"={ANA}"):
        with pytest.raises(ValueError):
            parse_reviewer_tokens(bad)


@pytest.fixture()
def served(monkeypatch, db):
    """Run `tunesmith review` with uvicorn.run replaced: returns (exit code, output, the app it would serve)."""
    import uvicorn
    from typer.testing import CliRunner

    from tunesmith.cli import app as cli

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))

    def run(*args, env=None):
        for k in ("TUNESMITH_REVIEW_TOKENS", "TUNESMITH_SERVE_TOKEN"):
            monkeypatch.delenv(k, raising=False)
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        res = CliRunner().invoke(cli, ["review", "--model", MODEL, "--db", db, *args])
        return res.exit_code, res.output, seen.pop("app", None)

    return run


def test_cli_reviewer_tokens_from_the_env(served, db):
    code, out, app = served(env={"TUNESMITH_REVIEW_TOKENS": f"ana={ANA},ben={BEN}",
                                 "TUNESMITH_SERVE_TOKEN": "the-serving-token-0123"})
    assert code == 0 and "per-reviewer tokens" in out and "ana, ben" in out
    client = TestClient(app, base_url="http://127.0.0.1:8100")
    assert client.get("/api/progress", headers={"authorization": "Bearer the-serving-token-0123"}).status_code == 401
    res = client.post("/label", data={"item_id": 1, "choice": "skip"}, headers={"authorization": f"Bearer {BEN}"})
    assert res.status_code == 200 and [r["reviewer"] for r in store.label_rows(db, MODEL)] == ["ben"]
    # bound to 127.0.0.1: another Host name (a DNS-rebinding page) is refused
    assert client.get("/healthz", headers={"host": "rebound.evil.example:8100"}).status_code == 403


def test_cli_bad_reviewer_tokens_exit_2(served):
    code, out, app = served(env={"TUNESMITH_REVIEW_TOKENS": "ana=short"})
    assert code == 2 and "TUNESMITH_REVIEW_TOKENS" in out and "Traceback" not in out and app is None
    code, out, app = served("--reviewer", "ana", env={"TUNESMITH_REVIEW_TOKENS": f"ana={ANA}"})
    assert code == 2 and "--reviewer" in out and app is None


def test_cli_without_a_token_reviews_as_reviewer(served):
    code, out, app = served("--reviewer", "cy")
    assert code == 0 and "reviewing as cy" in out
    client = TestClient(app, base_url="http://localhost:8100")
    assert "<b id='reviewer-name'>cy</b>" in client.get("/").text
    code, out, app = served("--host", "0.0.0.0")  # bound to every interface: any Host (set review.allowed_hosts)
    assert code == 0 and TestClient(app).get("/healthz").status_code == 200
