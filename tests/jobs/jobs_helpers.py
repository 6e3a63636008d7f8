"""Shared pieces of the jobs tests: an API config with tiny training defaults, and a running API + worker."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import yaml
from tests.toy_chat import make_chats

from tunesmith.config import config_from_dict

BASE = {  # what a team's jobs.base_config holds: fast training, a cheap evaluation, one gate
    "training": {"epochs": 2, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32", "num_threads": 1,
                 "early_stopping_patience": None, "warmup_ratio": 0.0, "eval_steps": 4},
    "method": {"kind": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
    "model": {"max_length": 64},
    "data": {"split": {"eval": 0.15, "test": 0.15}, "checks": {"pii": {"policy": "off"},
                                                               "duplicates": {"policy": "warn"}}},
    "evaluation": {"max_eval_rows": 4, "samples": 1, "bootstrap": {"samples": 100}},
    "gates": ["loss <= 100"],
}


def api_config(tmp_path: Path, **jobs):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    return config_from_dict({
        "name": "jobs-api", "data": {"path": "unused.jsonl"},
        "registry": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "jobs": {"state_dir": str(tmp_path / "jobs"), "lease_s": 3, "base_config": str(base), **jobs},
    })


def chats_jsonl(n: int = 48, seed: int = 0) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in make_chats(n, seed=seed)).encode()


class WorkerThread:
    """`tunesmith.jobs.queue.work` in a thread: `with WorkerThread(cfg):`."""

    def __init__(self, cfg, wid: str = "test-worker"):
        from tunesmith.jobs.queue import work

        self.stop = threading.Event()
        self.thread = threading.Thread(target=work, args=(cfg,), kwargs={"stop": self.stop, "poll_s": 0.1, "wid": wid},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=120)
