"""`tunesmith serve` as a hostile caller uses it (#15 findings 7-8): a poisoned input fails only its own request
(never its batch neighbours, never with a 500, never a rollback of a good challenger), and /metrics needs a token."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.serving.serve_helpers import LiveServer, register, settings

from tunesmith.serving import create_app
from tunesmith.serving.router import Role

LONE_SURROGATE = '{"input": "fine film \\ud800"}'  # the JSON escape of a lone surrogate, as a hostile client sends it


def _post_raw(client, body: str, caller: str = "mallory"):
    return client.post("/v1/classify", content=body.encode(), headers={"content-type": "application/json",
                                                                      "x-caller-key": caller})


def _burst(url: str, good: int, bad_bodies: list[str]):
    def call(body):
        with httpx.Client(base_url=url, timeout=60) as client:
            return _post_raw(client, body, caller="alice" if "great" in body else "mallory")
    bodies = [json.dumps({"input": f"great film {i}"}) for i in range(good)] + bad_bodies
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(call, bodies))


def test_bad_texts_are_refused_at_the_edge_and_good_neighbours_answer(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    app = create_app("clf", settings=settings(max_batch_size=64, max_wait_ms=30, max_input_chars=1000), store=store)
    with LiveServer(app) as server:
        for _ in range(3):  # rounds of 30 good and 3 poisoned requests arriving together
            replies = _burst(server.url, 30, [LONE_SURROGATE, '{"input": ["ok", "nul \\u0000 byte"]}',
                                              json.dumps({"input": "x" * 1001})])
            codes = [r.status_code for r in replies]
            assert codes[:30] == [200] * 30 and codes[30:] == [422] * 3, codes
        messages = [r.json()["error"]["message"] for r in replies[30:]]
        assert "lone surrogate" in messages[0] and "input" in messages[0]
        assert "control character" in messages[1] and "item 1" in messages[1]
        assert "1001 characters" in messages[2] and "serving.max_input_chars" in messages[2]
        with httpx.Client(base_url=server.url, timeout=60) as client:  # every text-carrying route checks
            for route, body in (("/v1/rerank", '{"query": "q\\udfff", "documents": ["d"]}'),
                                ("/v1/rerank", '{"query": "q", "documents": ["d", "\\u001b[31m"]}'),
                                ("/v1/embeddings", '{"input": "\\ud800"}'),
                                ("/v1/chat/completions", '{"messages": [{"role": "user", "content": "\\ud800"}]}'),
                                ("/v1/completions", '{"prompt": "\\u0000"}')):
                r = client.post(route, content=body.encode(), headers={"content-type": "application/json"})
                assert r.status_code == 422, (route, r.status_code, r.text)


def test_an_input_that_breaks_the_model_fails_only_its_own_request_with_a_503(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    app = create_app("clf", settings=settings(max_batch_size=64, max_wait_ms=50), store=store)
    with LiveServer(app) as server:
        batcher = app.state.serving.slots[Role.CHAMPION].batcher
        real = batcher.fn

        def fragile(texts):  # what a tokenizer does on an input it cannot handle: the whole batch raises
            if any("poison" in t for t in texts):
                raise ValueError("tokenizer exploded")
            return real(texts)
        batcher.fn = fragile
        replies = _burst(server.url, 30, [json.dumps({"input": f"poison {i}"}) for i in range(3)])
        codes = [r.status_code for r in replies]
        assert codes[:30] == [200] * 30 and codes[30:] == [503] * 3, codes
        assert all(int(r.headers["retry-after"]) >= 1 for r in replies[30:])
        assert batcher.isolated_batches >= 1  # the good ones were in a failed batch and answered anyway
        assert "request id" in replies[30].json()["error"]["message"]


def test_one_callers_bad_inputs_never_roll_back_a_good_challenger(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    register(store, tmp_path, "clf", classifier_dirs[0], champion=False)  # the same weights as the champion
    cfg = settings(challenger=True, canary={"percent": 100}, rollback={"window": 20, "min_requests": 5,
                                                                        "max_error_rate": 0.05})
    app = create_app("clf", settings=cfg, store=store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        state = app.state.serving
        assert Role.CHALLENGER in state.slots
        for _ in range(40):  # refused at the edge: 4xx, never judged
            assert _post_raw(client, LONE_SURROGATE).status_code == 422
        for role in (Role.CHAMPION, Role.CHALLENGER):  # an input both models fail on is the input's fault
            slot = state.slots[role]
            real = slot.batcher.fn
            slot.batcher.fn = (lambda r: lambda texts: (_ for _ in ()).throw(ValueError("bad input"))
                               if any("poison" in t for t in texts) else r(texts))(real)
        for i in range(40):
            r = _post_raw(client, json.dumps({"input": f"poison {i}"}))
            assert r.status_code == 503 and "retry-after" in r.headers
        assert Role.CHALLENGER in state.slots and not [e for e in state.events if e["event"] == "rollback"]
        ok = _post_raw(client, json.dumps({"input": "great film"}))
        assert ok.status_code == 200 and ok.json()["model_version"] == 2  # the challenger still serves its share


@pytest.mark.parametrize("separate", [False, True])
def test_metrics_need_the_token_and_health_stays_open(store, tmp_path, classifier_dirs, monkeypatch, separate):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    monkeypatch.setenv("TUNESMITH_SERVE_TOKEN", "serve-secret")
    if separate:
        monkeypatch.setenv("SCRAPER_TOKEN", "scrape-secret")
    app = create_app("clf", settings=settings(metrics_token_env="SCRAPER_TOKEN" if separate else None), store=store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
        plain = client.get("/metrics")
        assert plain.status_code == 401 and "tunesmith_" not in plain.text and "clf" not in plain.text
        assert client.get("/metrics", headers={"Authorization": "Bearer serve-secret"}).status_code == 200
        scraper = {"Authorization": "Bearer scrape-secret"}
        assert client.get("/metrics", headers=scraper).status_code == (200 if separate else 401)
        if separate:  # the scraper's token reads metrics only
            assert client.post("/v1/classify", json={"input": "x"}, headers=scraper).status_code == 401
            assert "SCRAPER_TOKEN" in plain.json()["error"]["message"]
