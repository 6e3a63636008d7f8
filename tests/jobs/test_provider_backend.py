"""training.backend: openai-compatible, tested against tunesmith's own jobs API on loopback as "the provider":
data gated before upload, the job followed, the result evaluated through the chat endpoint, registered external."""

from __future__ import annotations

import json

import pytest
from tests.jobs.jobs_helpers import WorkerThread, api_config, chats_jsonl
from tests.serving.serve_helpers import LiveServer

from tunesmith.config import config_from_dict
from tunesmith.data import DataError
from tunesmith.jobs.api import create_jobs_app
from tunesmith.jobs.store import JobStore
from tunesmith.pipeline import run


@pytest.fixture()
def provider(tmp_path, monkeypatch, tiny_chat_model_dir):
    side = tmp_path / "provider"
    side.mkdir()
    cfg = api_config(side, allowed_models=[tiny_chat_model_dir])
    store = JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)
    monkeypatch.setenv("TS_PROVIDER_KEY", store.add_key("client-team"))
    with LiveServer(create_jobs_app(cfg, store=store)) as server, WorkerThread(cfg):
        yield f"{server.url}/v1", store


def _client_config(tmp_path, base_url, model_dir, rows: bytes, **extra):
    (tmp_path / "chats.jsonl").write_bytes(rows)
    raw = {"name": "support-bot", "task": "causal-lm", "output_dir": str(tmp_path / "runs"),
           "data": {"path": str(tmp_path / "chats.jsonl"), "split": {"eval": 0.15, "test": 0.15}},
           "model": {"base": model_dir, "max_length": 64},
           "training": {"backend": "openai-compatible",
                        "provider": {"base_url": base_url, "api_key_env": "TS_PROVIDER_KEY", "suffix": "client",
                                     "hyperparameters": {"n_epochs": 2}, "poll_interval_s": 0.2, "timeout_s": 300}},
           "evaluation": {"max_eval_rows": 4, "bootstrap": {"samples": 100}},
           "registry": {"tracking_uri": f"sqlite:///{tmp_path / 'client-mlflow.db'}"},
           "gates": ["rouge_l >= 0"]}
    for key, value in extra.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
    return config_from_dict(raw)


def test_provider_trains_tunesmith_gates_and_registers_external(tmp_path, tiny_chat_model_dir, provider):
    base_url, store = provider
    said = []
    cfg = _client_config(tmp_path, base_url, tiny_chat_model_dir, chats_jsonl(48))
    outcome = run(cfg, say=said.append)

    assert outcome.passed and outcome.registered_version is not None
    text = "\n".join(said)
    assert "provider: uploaded" in text and "provider: Step " in text and "successfully completed" in text
    record = json.loads((outcome.run_dir / "model/external_model.json").read_text())
    assert record["external"] is True and record["provider.fine_tuned_model"].startswith("ft-")
    (job,) = store.list_jobs("client-team")[0]  # the provider side ran exactly this job, on the gated splits
    assert job["status"] == "succeeded" and job["fine_tuned_model"] == record["provider.fine_tuned_model"]
    metrics = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert 0 <= metrics["tuned"]["rouge_l"] <= 1 and "rouge_l" in metrics["baseline"]
    assert "answers come from its chat endpoint" in json.dumps(metrics)  # the report says where answers came from
    assert "generated locally (the provider does not serve it for chat)" in json.dumps(metrics)
    from tunesmith.registry import show_model

    tags = show_model("support-bot", registry=cfg.registry)["versions"][0]["tags"]
    assert tags["tunesmith.external"] == "true" and tags["provider.job_id"] == job["id"]
    assert tags["provider.fine_tuned_model"] == job["fine_tuned_model"] and tags["data_fingerprint"]


def test_a_failing_data_gate_uploads_nothing(tmp_path, tiny_chat_model_dir, provider):
    base_url, store = provider
    rows = chats_jsonl(40) + b'{"messages": [{"role": "user", "content": "mail me at jane.doe@example.com"},' \
                             b' {"role": "assistant", "content": "ok"}]}\n'
    cfg = _client_config(tmp_path, base_url, tiny_chat_model_dir, rows,
                         data={"checks": {"pii": {"policy": "fail"}}})
    with pytest.raises(DataError, match="pii|PII"):
        run(cfg)
    assert store.list_files("client-team") == []  # nothing left the building
