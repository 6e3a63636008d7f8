"""Three `tunesmith serve` processes of one model behind a round-robin client, sharing rollback state in a real
redis-server: a caller gets the same model from every replica, a challenger that fails on one replica's requests
is rolled back on every replica within one poll interval (decided once, counted once), and no 5xx reaches the
client. Each wait is bounded; the processes are stopped in `finally`."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.serving.serve_helpers import build_classifier, register

from tunesmith.config import RollbackConfig
from tunesmith.registry import get_version
from tunesmith.serving.router import SloWindow
from tunesmith.serving.state import ROLLED_BACK, ROLLOUT_TAG

pytestmark = pytest.mark.integration

REPLICAS = 3
POLL_S = 1.0
SHORT, LONG = "great film", "boring " * 40  # the challenger's position table holds 16 tokens: LONG breaks it
KEYS = [f"caller-{i}" for i in range(13)]  # 13 keys round-robin over 3 replicas: each key reaches every replica
SLO = RollbackConfig(window=20, min_requests=12, max_error_rate=0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(store, port: int, redis_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("TUNESMITH_SERVE_TOKEN", None)
    sets = {"shared_state": redis_url, "poll_interval_s": POLL_S, "predictions.enabled": "false",
            **{f"rollback.{k}": v for k, v in SLO.model_dump().items() if v is not None}}
    args = [sys.executable, "-m", "tunesmith.cli", "serve", "--model", "clf", "--tracking-uri", store.tracking_uri,
            "--port", str(port), "--canary", "50"]
    for key, value in sets.items():
        args += ["--set", f"serving.{key}={value}"]
    return subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _ready(proc: subprocess.Popen, url: str, log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tunesmith serve exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            if r.status_code == 200 and "challenger" in r.json()["serving"]:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready with a challenger in time: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait(timeout=10)


def _breached(ok: int, failed: int) -> bool:
    """Whether a window of `ok` good then `failed` failed challenger requests breaches SLO."""
    return SloWindow(SLO.window, [(True, 0.0)] * ok + [(False, 0.0)] * failed).breach(SLO) is not None


def _has_challenger(client: httpx.Client) -> bool:
    return "challenger" in client.get("/readyz").json()["serving"]


def _metric(client: httpx.Client, prefix: str) -> float:
    lines = client.get("/metrics").text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def test_a_failing_challenger_is_rolled_back_on_every_replica(store, tmp_path, classifier_dirs, encoder_dir,
                                                             redis_url):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    short = build_classifier(tmp_path / "short-context", 3, encoder_dir, max_positions=16)
    register(store, tmp_path, "clf", short, champion=False)  # v2, the challenger
    ports = [_free_port() for _ in range(REPLICAS)]
    logs = [tmp_path / f"replica-{i}.log" for i in range(REPLICAS)]
    procs = [_serve(store, port, redis_url, log) for port, log in zip(ports, logs, strict=True)]
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for port in ports]
    try:
        deadline = time.monotonic() + 120
        for proc, client, log in zip(procs, clients, logs, strict=True):
            _ready(proc, str(client.base_url), log, deadline)
        statuses = []

        def classify(client: httpx.Client, text: str, key: str) -> str:
            r = client.post("/v1/classify", json={"input": text}, headers={"x-caller-key": key})
            statuses.append(r.status_code)
            return r.headers.get("x-model-version", "")

        # Sticky across replicas: a caller key gets the same version from each one.
        seen = {key: {classify(client, SHORT, key) for client in clients} for key in KEYS}
        assert all(len(versions) == 1 for versions in seen.values()), seen
        assert {v for versions in seen.values() for v in versions} == {"clf:1", "clf:2"}

        # Round robin with long inputs: the challenger's share fails (the champion answers) until one replica
        # sees the breach over the shared window; then no more traffic, and every replica must follow.
        rolled_back, judged = None, [0] * REPLICAS  # challenger requests each replica judged
        for (i, client), key in zip(itertools.cycle(enumerate(clients)), itertools.cycle(KEYS)):
            assert len(statuses) < len(KEYS) * REPLICAS + 200, "no replica rolled the challenger back"
            classify(client, LONG, key)
            judged[i] += seen[key] == {"clf:2"}
            if not _has_challenger(client):
                rolled_back = time.monotonic()
                break
        # The window is shared: it breached at this request, and no replica's own outcomes would have.
        sticky = sum(versions == {"clf:2"} for versions in seen.values())  # each replica answered these once
        assert _breached(REPLICAS * sticky, sum(judged)) and not _breached(REPLICAS * sticky, sum(judged) - 1)
        assert not any(_breached(sticky, own) for own in judged), judged
        while any(_has_challenger(c) for c in clients) and time.monotonic() < rolled_back + POLL_S + 1.0:
            time.sleep(0.05)
        followed_in = time.monotonic() - rolled_back
        assert not any(_has_challenger(c) for c in clients), f"not every replica dropped the challenger in {followed_in}"

        assert all(s < 500 for s in statuses) and set(statuses) == {200}  # zero 5xx reached the client
        assert all(_metric(c, "tunesmith_canary_percent") == 0 for c in clients)
        assert sum(_metric(c, "tunesmith_rollbacks_total") for c in clients) == 1  # decided once, counted once
        assert {classify(client, LONG, key) for client in clients for key in KEYS} == {"clf:1"}
        v2 = get_version("clf", 2, store=store)
        assert v2.tags[ROLLOUT_TAG] == ROLLED_BACK and "error rate" in v2.tags["tunesmith.rollback_reason"]
        assert "challenger" not in v2.aliases and get_version("clf", 1, store=store).aliases == ["champion"]
    finally:
        for client in clients:
            client.close()
        for proc in procs:
            _stop(proc)
    texts = [log.read_text() for log in logs]
    rollbacks = [line for text in texts for line in text.splitlines() if "ROLLBACK clf" in line]
    assert len(rollbacks) == REPLICAS, rollbacks  # every replica logged it
    assert sum("as replica" not in line for line in rollbacks) == 1  # and one of them decided it
