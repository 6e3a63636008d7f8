"""Registry fixtures: a fresh SQLite MLflow store per test, a config, and a tiny fake model dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tunesmith.config import Config, config_from_dict
from tunesmith.registry import Store, log_run, open_store


@pytest.fixture()
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    return open_store(workdir=tmp_path)


@pytest.fixture()
def cfg(tmp_path) -> Config:
    return config_from_dict({"name": "sentiment", "data": {"path": str(tmp_path / "reviews.jsonl")}})


def write_fake_model(path: Path) -> Path:
    """What training leaves in run_dir/model, plus files that must not be shipped (a pickle, a checkpoint)."""
    path.mkdir(parents=True, exist_ok=True)
    save_file(
        {"classifier.weight": torch.zeros(2, 4), "classifier.bias": torch.ones(2)},
        str(path / "model.safetensors"),
    )
    (path / "config.json").write_text(json.dumps({"id2label": {"0": "neg", "1": "pos"}}))
    (path / "tokenizer.json").write_text("{}")
    (path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    (path / "training_args.bin").write_bytes(b"\x80\x04pickle")
    (path / "checkpoint-10").mkdir()
    (path / "checkpoint-10" / "model.safetensors").write_bytes(b"stale")
    return path


@pytest.fixture()
def model_dir(tmp_path) -> Path:
    return write_fake_model(tmp_path / "run-1" / "model")


@pytest.fixture()
def make_run(store, cfg, tmp_path):
    """Log a run with the fake model and the given metrics; returns its MLflow run id."""

    def make(macro_f1: float = 0.8, name: str = "run-1") -> str:
        run_dir = tmp_path / name
        model = write_fake_model(run_dir / "model")
        return log_run(
            cfg,
            run_dir=run_dir,
            params={},
            metrics={"macro_f1": macro_f1, "accuracy": 0.9},
            artifacts=[],
            model_dir=model,
            tags={},
            store=store,
        )

    return make
