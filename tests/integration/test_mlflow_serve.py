"""`mlflow models serve -m models:/NAME@champion` (MLflow's own scoring server, on 127.0.0.1) answers a registered
classification, embedding and chat version, and its answers equal `tunesmith serve`'s for the same inputs.

Each server gets at most 120 s to come up and a handful of requests; it is killed afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from tests import model_dirs
from tests.compare import close

from tunesmith.config import config_from_dict
from tunesmith.registry import log_run, open_store, promote, register_version
from tunesmith.serving import create_app

pytestmark = pytest.mark.integration

TEXTS = ["great film", "the plot made no sense"]
MESSAGES = [{"role": "user", "content": "refund please"}]
# family -> (model builder, base fixture, MLflow scoring request, tunesmith route, its request, answers per row)
CASES = {
    "classification": (model_dirs.classifier, "tiny_model_dir",
                       {"dataframe_split": {"columns": ["text"], "data": [[t] for t in TEXTS]}},
                       "/v1/classify", {"input": TEXTS}, lambda body: body["results"]),
    "embedding": (model_dirs.embedder, "tiny_model_dir", {"inputs": {"text": TEXTS}},
                  "/v1/embeddings", {"input": TEXTS}, lambda body: [d["embedding"] for d in body["data"]]),
    "causal-lm": (model_dirs.chat_model, "tiny_chat_model_dir",
                  {"dataframe_records": [{"messages": MESSAGES}], "params": {"max_tokens": 6}},
                  "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 6},
                  lambda body: [{"text": c["message"]["content"]} for c in body["choices"]]),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scoring_server(model_uri: str, store, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.tracking_uri, "MLFLOW_REGISTRY_URI": store.registry_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its uvicorn
           "HF_HUB_OFFLINE": "1"}
    mlflow = str(Path(sys.executable).parent / "mlflow")
    return subprocess.Popen([mlflow, "models", "serve", "-m", model_uri, "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_ready(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow models serve exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"mlflow models serve not ready in 120 s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the CLI and the uvicorn it started
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.parametrize("family", list(CASES))
def test_mlflow_models_serve_answers_as_tunesmith_serve(family, request, tmp_path, monkeypatch):
    build, base, mlflow_request, route, route_request, per_row = CASES[family]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    name = f"m-{family}"
    cfg = config_from_dict({"name": name, "task": family, "data": {"path": str(tmp_path / "unused.jsonl")}})
    store = open_store(workdir=tmp_path)
    model_dir = build(tmp_path / "run" / "model", request.getfixturevalue(base), name=name)
    run_id = log_run(cfg, run_dir=tmp_path / "run", model_dir=model_dir, store=store)
    register_version(name, run_id=run_id, store=store)
    promote(name, store=store)

    with TestClient(create_app(name, settings=cfg.serving, store=store)) as http:
        ours = http.post(route, json=route_request)
    assert ours.status_code == 200, ours.text

    port, log = _free_port(), tmp_path / "mlflow-serve.log"
    proc = _scoring_server(f"models:/{name}@champion", store, port, log)
    try:
        _wait_ready(proc, port, log)
        theirs = httpx.post(f"http://127.0.0.1:{port}/invocations", json=mlflow_request, timeout=60)
        wrong = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [{"txt": "hi"}]},
                           timeout=60)
    finally:
        _stop(proc)
    assert theirs.status_code == 200, theirs.text
    predictions = theirs.json()["predictions"]
    assert close(per_row(ours.json()), predictions, shared_keys=True), (per_row(ours.json()), predictions)
    assert wrong.status_code == 400 and "missing inputs" in wrong.json()["message"]  # the signature is enforced
