"""Robustness of a real server: overload answers 429 (never 500), body limit 413, clear 422s, bearer auth,
routes a task does not serve, and SIGTERM with requests in flight loses none."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.serving.serve_helpers import LiveServer, register, settings, wait_for

from tunesmith.serving import create_app
from tunesmith.serving.router import Role


@pytest.fixture()
def clf_store(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    return store


def test_overload_answers_429_with_retry_after_never_500(clf_store):
    app = create_app("clf", settings=settings(max_queue=2, max_batch_size=1, max_wait_ms=0), store=clf_store)
    with LiveServer(app) as server:
        batcher = app.state.serving.slots[Role.CHAMPION].batcher
        real = batcher.fn

        def slow(texts):
            time.sleep(0.2)
            return real(texts)

        batcher.fn = slow

        def call(i):
            with httpx.Client(base_url=server.url, timeout=60) as client:
                return client.post("/v1/classify", json={"input": f"great {i}"})

        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(call, range(16)))
        codes = [r.status_code for r in replies]
        assert set(codes) <= {200, 429}
        assert codes.count(429) >= 5 and codes.count(200) >= 2
        busy = next(r for r in replies if r.status_code == 429)
        assert int(busy.headers["retry-after"]) >= 1
        assert "queue is full" in busy.json()["error"]["message"]
        metrics = httpx.get(f"{server.url}/metrics").text
        assert f'tunesmith_rejected_total{{reason="queue_full"}} {codes.count(429)}.0' in metrics


def test_limits_validation_auth_and_unserved_routes(clf_store, monkeypatch):
    monkeypatch.setenv("TUNESMITH_SERVE_TOKEN", "s3cret")
    app = create_app("clf", settings=settings(max_body_bytes=2048), store=clf_store)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        auth = {"Authorization": "Bearer s3cret"}
        assert client.get("/healthz").status_code == 200  # health needs no token
        assert client.get("/readyz").json()["model_version"] == 1
        assert client.get("/metrics").status_code == 401  # metrics name models and versions: token needed
        assert client.get("/metrics", headers=auth).status_code == 200
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        denied = client.post("/v1/classify", json={"input": "great"})
        assert denied.status_code == 401 and "TUNESMITH_SERVE_TOKEN" in denied.json()["error"]["message"]
        assert client.post("/v1/classify", json={"input": "great"},
                           headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.post("/v1/classify", json={"input": ["great film", "dull"]}, headers=auth)
        assert ok.status_code == 200
        body = ok.json()
        assert [r["label"] in ("neg", "pos") for r in body["results"]] == [True, True]
        assert body["results"][0]["score"] == pytest.approx(max(body["results"][0]["scores"].values()), abs=1e-5)
        assert body["request_id"] == ok.headers["x-request-id"] and ok.headers["x-model-version"] == "clf:1"

        too_big = client.post("/v1/classify", json={"input": "x" * 5000}, headers=auth)
        assert too_big.status_code == 413
        missing = client.post("/v1/classify", json={"text": "great"}, headers=auth)
        assert missing.status_code == 422 and "body.input: Field required" in missing.json()["error"]["message"]
        empty = client.post("/v1/classify", json={"input": []}, headers=auth)
        assert empty.status_code == 422 and "at least one text" in empty.json()["error"]["message"]
        broken = client.post("/v1/classify", content=b"{not json", headers={**auth, "content-type": "application/json"})
        assert broken.status_code == 422
        for route in ("/v1/extract", "/v1/score", "/v1/embeddings"):
            r = client.post(route, json={"input": "great"}, headers=auth)
            assert r.status_code == 400, route
            assert "classification model" in r.json()["error"]["message"] and "/v1/classify" in r.json()["error"][
                "message"]
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]},
                           headers=auth)
        assert chat.status_code == 400
        custom = client.post("/v1/classify", json={"input": "a"}, headers={**auth, "x-request-id": "abc-123"})
        assert custom.headers["x-request-id"] == "abc-123" and custom.json()["request_id"] == "abc-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_drains_in_flight_requests(clf_store, tmp_path):
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": clf_store.tracking_uri, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "tunesmith.cli", "serve", "--model", "clf", "--port", str(port),
           "--set", "serving.max_wait_ms=1500", "--set", "serving.max_batch_size=64"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_for(ready, timeout=120, step=0.25), proc.stdout.read() if proc.poll() is not None else ""

        def call(i):
            return httpx.post(f"{url}/v1/classify", json={"input": f"great {i}"}, timeout=60).status_code

        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(call, i) for i in range(20)]
            time.sleep(0.7)  # all 20 are waiting in the 1.5 s batch window
            proc.send_signal(signal.SIGTERM)
            codes = [f.result() for f in futures]
        assert codes == [200] * 20
        # uvicorn re-raises the signal after its graceful shutdown, so the exit status says "terminated by TERM".
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    from tunesmith.monitoring import read_predictions

    rows = read_predictions(f"sqlite:///{tmp_path / '.tunesmith' / 'predictions.db'}")  # the default log location
    assert sorted(r["input"] for r in rows) == sorted(f"great {i}" for i in range(20))  # flushed before exit
