"""Workers: a SIGKILLed worker's job is requeued and resumed from its checkpoint (or failed, by policy), never run
twice at once and never lost; two workers on one Redis queue never take the same job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from tests.jobs.jobs_helpers import BASE, WorkerThread, chats_jsonl

from tunesmith.config import config_from_dict
from tunesmith.jobs.queue import enqueue, reap
from tunesmith.jobs.store import JobStore


def _config(tmp_path: Path, base: dict, **jobs) -> tuple[Path, object]:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    raw = {"name": "jobs-api", "data": {"path": "unused.jsonl"},
           "registry": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
           "jobs": {"state_dir": str(tmp_path / "jobs"), "lease_s": 3, "base_config": str(tmp_path / "base.yaml"),
                    **jobs}}
    (tmp_path / "api.yaml").write_text(json.dumps(raw))
    return tmp_path / "api.yaml", config_from_dict(raw)


def _submit(cfg, store: JobStore, model: str, rows: int, seed: int = 0) -> str:
    path = Path(cfg.jobs.state_dir) / f"upload-{seed}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(chats_jsonl(rows, seed=seed))
    f = store.add_file("team", filename=path.name, purpose="fine-tune", path=path, bytes=path.stat().st_size,
                       status="processed")
    job = store.create_job("team", spec={"model": model, "training_file": f["id"]})
    enqueue(cfg, job["id"])
    return job["id"]


def _worker_process(config: Path, tmp_path: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "worker", "-c", str(config), "--poll", "0.1"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _events(store: JobStore, job_id: str) -> list[dict]:
    return list(reversed(store.list_events(job_id, limit=1000)[0]))  # oldest first


def test_sigkilled_worker_job_resumes_from_its_checkpoint(tmp_path, tiny_chat_model_dir):
    slow = {**BASE, "training": {**BASE["training"], "epochs": 4, "eval_steps": 10}}
    config, cfg = _config(tmp_path, slow, allowed_models=[tiny_chat_model_dir])
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    job_id = _submit(cfg, store, tiny_chat_model_dir, rows=480)
    first = _worker_process(config, tmp_path, "first")
    try:
        ckpt = _wait(lambda: store.list_checkpoints(job_id)[0], 120, "the first checkpoint")[0]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert store.get_job(job_id)["status"] == "running"  # the dead worker still holds the lease, for now
    with WorkerThread(cfg, wid="second"):
        _wait(lambda: store.get_job(job_id)["status"] in ("succeeded", "failed"), 180, "the resumed job")
    job = store.get_job(job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["tunesmith"]["attempts"] == 2 and job["tunesmith"]["worker_id"] == "second"
    events = _events(store, job_id)
    starts = [i for i, e in enumerate(events) if e["message"].startswith("Fine-tuning job started")]
    requeued = [i for i, e in enumerate(events) if e["message"].startswith("Requeued")]
    assert len(starts) == 2 and len(requeued) == 1 and starts[0] < requeued[0] < starts[1]  # one holder at a time
    assert events[starts[1]]["data"] == {"worker_id": "second", "attempt": 2, "resumed": True}
    resumed_steps = [e["data"]["step"] for e in events[starts[1]:] if "train_loss" in (e["data"] or {})]
    assert resumed_steps and min(resumed_steps) > ckpt["step_number"]  # continued, not restarted from step 0


def test_lost_worker_policy_fail_and_attempt_limit(tmp_path, tiny_chat_model_dir):
    _, cfg = _config(tmp_path, BASE, on_worker_lost="fail", allowed_models=[tiny_chat_model_dir])
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    job_id = _submit(cfg, store, tiny_chat_model_dir, rows=8)
    assert store.claim(job_id, "ghost", lease_s=0.05) and not store.claim(job_id, "other", lease_s=5)
    time.sleep(0.1)  # the ghost never heartbeats
    assert reap(cfg, store) == [job_id]
    job = store.get_job(job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "worker_lost" and "ghost" in job["error"]["message"]
    assert not store.heartbeat(job_id, "ghost", lease_s=5)  # a late heartbeat cannot revive it

    _, cfg = _config(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path, BASE, max_attempts=2,
                     allowed_models=[tiny_chat_model_dir])
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    job_id = _submit(cfg, store, tiny_chat_model_dir, rows=8)
    for attempt in (1, 2):
        assert store.claim(job_id, f"ghost-{attempt}", lease_s=0.05)
        time.sleep(0.1)
        assert reap(cfg, store) == [job_id]
    job = store.get_job(job_id)
    assert job["status"] == "failed" and "2 of 2 attempts" in job["error"]["message"]


def test_two_workers_on_redis_never_share_a_job(tmp_path, tiny_chat_model_dir, redis_url):
    """The whole flow again with the official client, now on the Redis queue with two worker processes."""
    import io

    import openai
    from tests.serving.serve_helpers import LiveServer

    from tunesmith.jobs.api import create_jobs_app

    config, cfg = _config(tmp_path, BASE, queue="redis", redis_url=redis_url,
                          allowed_models=[tiny_chat_model_dir])
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    key = store.add_key("team")
    workers = [_worker_process(config, tmp_path, f"w{i}") for i in range(2)]
    try:
        with LiveServer(create_jobs_app(cfg, store=store)) as server:
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)
            f = client.files.create(file=("chats.jsonl", io.BytesIO(chats_jsonl(24))), purpose="fine-tune")
            job_ids = [client.fine_tuning.jobs.create(model=tiny_chat_model_dir, training_file=f.id, seed=i + 1,
                                                      suffix=f"s{i}").id for i in range(4)]
            _wait(lambda: all(client.fine_tuning.jobs.retrieve(j).status in ("succeeded", "failed")
                              for j in job_ids), 240, "4 jobs")
            holders = set()
            for j in job_ids:
                job = client.fine_tuning.jobs.retrieve(j)
                assert job.status == "succeeded", job.error
                assert job.model_extra["tunesmith"]["attempts"] == 1  # claimed once: no job ran twice
                starts = [e for e in client.fine_tuning.jobs.list_events(j, limit=500)
                          if e.message.startswith("Fine-tuning job started")]
                assert len(starts) == 1
                holders.add(starts[0].data["worker_id"])
                assert list(client.fine_tuning.jobs.checkpoints.list(j))  # each job committed checkpoints
            assert len(holders) == 2  # both workers took jobs from the one Redis queue
            reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=4,
                                                   messages=[{"role": "user", "content": "order status"}])
            assert reply.choices[0].message.content is not None
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=60)
    assert all(w.returncode == 0 for w in workers)  # SIGTERM: a clean stop
