"""Shared pieces for the training tests: a DataBundle stand-in and a small, fast config."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pytest
from tests.toy import make_reviews
from transformers import TrainerCallback

from tunesmith.config import Config, config_from_dict


@dataclass
class FakeBundle:
    """What training reads from tunesmith.data.DataBundle (not imported: built in parallel)."""

    train: pd.DataFrame
    eval: pd.DataFrame
    test: pd.DataFrame
    labels: list[str] = field(default_factory=lambda: ["neg", "pos"])
    fingerprint: str = "test"


def make_bundle(n_train: int = 160, n_eval: int = 40, seed: int = 0) -> FakeBundle:
    df = make_reviews(n_train + 2 * n_eval, seed=seed)
    return FakeBundle(train=df[:n_train], eval=df[n_train : n_train + n_eval], test=df[n_train + n_eval :])


def make_config(model_dir: str, method: str = "full", **training) -> Config:
    """~10 steps per epoch on make_bundle(); fp32 and one thread so results are exactly reproducible."""
    base = {"epochs": 2, "batch_size": 16, "learning_rate": 5e-3, "precision": "fp32", "eval_steps": 5,
            "num_threads": 1, "early_stopping_patience": None,
            "keep_checkpoints": True}
    return config_from_dict({
        "name": "toy",
        "data": {"path": "unused.jsonl"},
        "model": {"base": model_dir, "max_length": 32},
        "method": {"kind": method, "freeze": {"layers": 1}, "lora": {"r": 4, "alpha": 8}},
        "training": {**base, **training},
    })


@pytest.fixture()
def bundle() -> FakeBundle:
    return make_bundle()


class Interrupted(Exception):
    """Stands in for a crash or Ctrl-C in the middle of training."""


class InterruptAfterSave(TrainerCallback):
    """Interrupts training right after the checkpoint at `step` is committed: no final model gets written."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupted(f"interrupted after checkpoint-{self.step}")
        return control
