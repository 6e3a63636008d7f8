"""--resume continues a run only on the data, labels and training settings it started with."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tests.training.conftest import make_bundle, make_config
from transformers import TrainerCallback

from tunesmith.config import RegistryConfig
from tunesmith.training import TrainingError, train
from tunesmith.training.identity import IDENTITY_FILE, data_fingerprint, identity_changes, run_identity


class StopAfterSave(TrainerCallback):
    """Ends training right after the checkpoint at `step` is committed, as an interruption would."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True
        return control


@pytest.fixture()
def interrupted(tiny_model_dir, bundle, tmp_path):
    """A run stopped after its first checkpoint (step 2 of 4): (config, run dir)."""
    cfg = make_config(tiny_model_dir, max_steps=4, eval_steps=2)
    run = tmp_path / "run"
    train(cfg, bundle, run, callbacks=[StopAfterSave(2)])
    return cfg, run


def test_a_fresh_run_records_its_identity(interrupted, bundle):
    cfg, run = interrupted
    stored = json.loads((run / "checkpoints" / IDENTITY_FILE).read_text())
    assert stored["data_fingerprint"] == "test" and stored["labels"] == ["neg", "pos"]
    assert stored["config"]["training.learning_rate"] == 0.005
    assert "registry.tracking_uri" not in stored["config"] and "training.num_threads" not in stored["config"]
    assert stored == json.loads(json.dumps(run_identity(cfg, bundle)))


def test_resume_refuses_changed_config_keys_and_names_them(interrupted, bundle):
    cfg, run = interrupted
    changed = cfg.model_copy(update={
        "training": cfg.training.model_copy(update={"learning_rate": 1e-3, "max_steps": 6}),
        "seed": 7,
    })
    with pytest.raises(TrainingError) as err:
        train(changed, bundle, run, resume=True)
    message = str(err.value)
    assert "cannot resume" in message
    assert "config training.learning_rate: 0.005 -> 0.001" in message
    assert "config training.max_steps: 4 -> 6" in message and "config seed: 42 -> 7" in message
    assert "data fingerprint" not in message and "labels:" not in message
    assert "hint: revert the change to continue this run, or start a new run (without --resume)" in message


def test_resume_refuses_changed_data_and_labels(interrupted, bundle):
    cfg, run = interrupted
    with pytest.raises(TrainingError, match=r"data fingerprint: test -> other") as err:
        train(cfg, replace(bundle, fingerprint="other"), run, resume=True)
    assert "config " not in str(err.value)

    three = replace(bundle, labels=["neg", "neutral", "pos"])  # would be a shape mismatch in the head
    with pytest.raises(TrainingError, match=r"labels: \['neg', 'pos'\] -> \['neg', 'neutral', 'pos'\]"):
        train(cfg, three, run, resume=True)


def test_resume_allows_operational_changes(interrupted, bundle):
    cfg, run = interrupted
    t = cfg.training.model_copy(update={"num_threads": 2, "keep_checkpoints": False, "save_total_limit": 5})
    changed = cfg.model_copy(update={
        "training": t, "output_dir": "elsewhere", "registry": RegistryConfig(tracking_uri="sqlite:///x.db"),
    })
    result = train(changed, bundle, run, resume=True)
    assert (result.model_dir / "model.safetensors").is_file()
    assert not (run / "checkpoints").exists()  # keep_checkpoints: False now applies


def test_identity_changes_lists_added_and_removed_keys():
    stored = {"data_fingerprint": "a", "labels": ["x"], "config": {"model.base": "m", "training.epochs": 3}}
    current = {"data_fingerprint": "a", "labels": ["x"], "config": {"model.base": "m", "method.lora.r": 8}}
    assert identity_changes(stored, current) == [
        "config method.lora.r: (not set) -> 8",
        "config training.epochs: 3 -> (not set)",
    ]


def test_without_a_bundle_fingerprint_the_frames_are_hashed():
    a = make_bundle()
    a_nofp, b_nofp = replace(a, fingerprint=""), replace(a, fingerprint="")
    assert data_fingerprint(a_nofp) == data_fingerprint(b_nofp)
    edited = replace(a_nofp, train=a.train.assign(text=a.train["text"].str.upper()))
    assert data_fingerprint(edited) != data_fingerprint(a_nofp)
    assert data_fingerprint(a) == "test"
