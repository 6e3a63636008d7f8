"""The whole flow with the official `openai` client only: upload, create, follow events, list checkpoints, chat
with the fine-tuned model; plus the error shapes of bad uploads and the isolation between keys."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest
from tests.jobs.jobs_helpers import WorkerThread, api_config, chats_jsonl
from tests.serving.serve_helpers import LiveServer

from tunesmith.jobs.api import create_jobs_app
from tunesmith.jobs.store import JobStore


@pytest.fixture()
def api(tmp_path, tiny_chat_model_dir):
    cfg = api_config(tmp_path, allowed_models=["builtin:*", tiny_chat_model_dir])
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    keys = {"a": store.add_key("team-a", max_jobs=2, max_file_bytes=200_000), "b": store.add_key("team-b")}
    with LiveServer(create_jobs_app(cfg, store=store)) as server:
        clients = {k: openai.OpenAI(base_url=f"{server.url}/v1", api_key=v, max_retries=0, timeout=60)
                   for k, v in keys.items()}
        yield cfg, store, clients, keys


def _wait_done(client, job_id, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job.status}")


def test_upload_train_follow_and_chat_with_the_openai_client(api, tiny_chat_model_dir):
    cfg, store, clients, _ = api
    client = clients["a"]
    f = client.files.create(file=("train.jsonl", io.BytesIO(chats_jsonl(48))), purpose="fine-tune")
    assert f.status == "processed" and f.bytes > 0 and "48 messages rows" in f.status_details
    assert client.files.retrieve(f.id).filename == "train.jsonl"
    job = client.fine_tuning.jobs.create(model=tiny_chat_model_dir, training_file=f.id, suffix="support",
                                         hyperparameters={"n_epochs": 2}, seed=7)
    assert job.status == "queued" and job.training_file == f.id and job.hyperparameters.n_epochs == 2

    with WorkerThread(cfg):
        done = _wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft-") and done.fine_tuned_model.endswith(":1")
    assert done.trained_tokens and done.trained_tokens > 0 and done.finished_at >= done.created_at

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=200))
    messages = [e.message for e in events]
    assert any(m.startswith("Step ") and "training loss=" in m for m in messages)
    assert any(m.startswith("gate PASS: loss <= 100") for m in messages)
    assert any("successfully completed" in m for m in messages)
    steps = [e.data["step"] for e in events if e.type == "metrics" and "train_loss" in (e.data or {})]
    assert steps and max(steps) >= 4
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert checkpoints and all(c.fine_tuning_job_id == job.id and c.step_number > 0 for c in checkpoints)
    assert checkpoints[0].metrics.step == float(checkpoints[0].step_number)

    assert [m.id for m in client.models.list()] == [done.fine_tuned_model]
    reply = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=8,
                                           messages=[{"role": "user", "content": "what weather"}])
    assert reply.choices[0].message.role == "assistant" and reply.usage.completion_tokens > 0
    # the registry version carries the job's lineage like any `tunesmith run`
    from tunesmith.registry import show_model

    shown = show_model(done.fine_tuned_model.split(":")[0], registry=cfg.registry)
    assert shown["versions"][0]["tags"]["data_fingerprint"]


def test_bad_uploads_get_provider_shaped_errors_with_line_numbers(api):
    _, _, clients, _ = api
    client = clients["a"]
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})
    cases = {
        "not jsonl": (f"{good}\nthis is not json\n", 400, "train.jsonl:2", "invalid_file_format"),
        "wrong role": (good + "\n" + json.dumps({"messages": [{"role": "robot", "content": "x"},
                                                              {"role": "assistant", "content": "y"}]}) + "\n",
                       400, "train.jsonl:2: wrong_role", "invalid_training_row"),
        "empty answer": (good + "\n" * 3 + json.dumps({"messages": [{"role": "user", "content": "x"},
                                                                    {"role": "assistant", "content": " "}]}),
                         400, "train.jsonl:4: empty_assistant", "invalid_training_row"),
        "too big": (good + "\n" + "x" * 200_001, 413, "at most 200000 bytes", "file_too_large"),
    }
    for name, (content, status, where, code) in cases.items():
        with pytest.raises(openai.APIStatusError) as info:
            client.files.create(file=("train.jsonl", io.BytesIO(content.encode())), purpose="fine-tune")
        err = info.value
        assert err.status_code == status, name
        assert where in err.body["message"] and err.body["code"] == code, (name, err.body)
    assert client.files.list().data == []  # nothing half-stored


def test_keys_are_hashed_isolated_and_limited(api, tiny_chat_model_dir, tmp_path):
    cfg, store, clients, keys = api
    a, b = clients["a"], clients["b"]
    f = a.files.create(file=("t.jsonl", io.BytesIO(chats_jsonl(8))), purpose="fine-tune")
    job = a.fine_tuning.jobs.create(model=tiny_chat_model_dir, training_file=f.id)
    for call in (lambda: b.files.retrieve(f.id), lambda: b.files.content(f.id),
                 lambda: b.fine_tuning.jobs.retrieve(job.id), lambda: b.fine_tuning.jobs.cancel(job.id),
                 lambda: b.fine_tuning.jobs.list_events(job.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError, match="no file"):  # b cannot train on a's file
        b.fine_tuning.jobs.create(model=tiny_chat_model_dir, training_file=f.id)
    assert b.fine_tuning.jobs.list().data == [] and [j.id for j in a.fine_tuning.jobs.list()] == [job.id]
    a.fine_tuning.jobs.create(model=tiny_chat_model_dir, training_file=f.id)
    with pytest.raises(openai.RateLimitError, match="quota"):  # team-a may have 2 unfinished jobs
        a.fine_tuning.jobs.create(model=tiny_chat_model_dir, training_file=f.id)
    assert a.fine_tuning.jobs.cancel(job.id).status == "cancelled"  # queued: cancelled at once
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=str(a.base_url), api_key="ts-wrong", max_retries=0).files.list()
    with pytest.raises(openai.BadRequestError, match="training.epochs"):  # the extension is validated at create
        a.fine_tuning.jobs.create(model=tiny_chat_model_dir, training_file=f.id,
                                  extra_body={"tunesmith": {"config": {"training": {"epochs": -1}}}})
    db = (tmp_path / "jobs" / "jobs.db").read_bytes() + (tmp_path / "jobs" / "jobs.db-wal").read_bytes() \
        if (tmp_path / "jobs" / "jobs.db-wal").exists() else (tmp_path / "jobs" / "jobs.db").read_bytes()
    assert all(k.encode() not in db for k in keys.values())  # only sha256 hashes at rest


def test_jobs_routes_mount_on_another_app(tmp_path):
    """`tunesmith serve --jobs`: the serving app gets the files and jobs routes (and their error shape), not chat."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tunesmith.jobs.api import mount_jobs

    cfg = api_config(tmp_path)
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    app = FastAPI()
    mount_jobs(app, cfg, store=store)
    client = TestClient(app)
    denied = client.get("/v1/files")
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
    key = store.add_key("team")
    listed = client.get("/v1/fine_tuning/jobs", headers={"Authorization": f"Bearer {key}"})
    assert listed.status_code == 200 and listed.json()["object"] == "list"
    assert client.post("/v1/chat/completions", json={}).status_code == 404  # the serving app's own route
