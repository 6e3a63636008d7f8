"""--resume continues a run only on the data, labels and training settings it started with."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tests.training.conftest import InterruptAfterSave, Interrupted, make_bundle, make_config

from tunesmith.config import RegistryConfig
from tunesmith.training import TrainingError, train
from tunesmith.training.identity import IDENTITY_FILE, data_fingerprint, identity_changes, run_identity


@pytest.fixture()
def interrupted(tiny_model_dir, bundle, tmp_path):
    """A run stopped after its first checkpoint (step 2 of 4): (config, run dir)."""
    cfg = make_config(tiny_model_dir, max_steps=4, eval_steps=2)
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        train(cfg, bundle, run, callbacks=[InterruptAfterSave(2)])
    return cfg, run


def test_a_fresh_run_records_its_identity(interrupted, bundle):
    cfg, run = interrupted
    stored = json.loads((run / "checkpoints" / IDENTITY_FILE).read_text())
    assert stored["data_fingerprint"] == data_fingerprint(bundle) and stored["labels"] == ["neg", "pos"]
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
    edited = replace(bundle, train=bundle.train.assign(text=bundle.train["text"] + " again"))
    with pytest.raises(TrainingError, match=r"data fingerprint: ") as err:
        train(cfg, edited, run, resume=True)
    assert "config " not in str(err.value)

    three = replace(bundle, labels=["neg", "neutral", "pos"])  # would be a shape mismatch in the head
    with pytest.raises(TrainingError, match=r"labels: \['neg', 'pos'\] -> \['neg', 'neutral', 'pos'\]"):
        train(cfg, three, run, resume=True)


def test_resume_allows_operational_changes(interrupted, bundle):
    cfg, run = interrupted
    t = cfg.training.model_copy(update={"num_threads": 2, "keep_checkpoints": False, "save_total_limit": 5})
    # The same rows from another file, an extra evaluation slice: nothing the weights being trained depend on.
    data = cfg.data.model_copy(update={"path": "/elsewhere/same-rows.csv.gz", "slice_columns": ["genre"]})
    changed = cfg.model_copy(update={
        "training": t, "output_dir": "elsewhere", "registry": RegistryConfig(tracking_uri="sqlite:///x.db"),
        "data": data, "evaluation": cfg.evaluation.model_copy(update={"slices": ["genre", "text_length"]}),
    })
    result = train(changed, replace(bundle, fingerprint="a different test split"), run, resume=True)
    assert (result.model_dir / "model.safetensors").is_file()
    assert not (run / "checkpoints").exists()  # keep_checkpoints: False now applies


def test_identity_changes_lists_added_and_removed_keys():
    stored = {"data_fingerprint": "a", "labels": ["x"], "config": {"model.base": "m", "training.epochs": 3}}
    current = {"data_fingerprint": "a", "labels": ["x"], "config": {"model.base": "m", "method.lora.r": 8}}
    assert identity_changes(stored, current) == [
        "config method.lora.r: (not set) -> 8",
        "config training.epochs: 3 -> (not set)",
    ]


def test_the_data_identity_is_what_training_consumes():
    a = make_bundle()
    assert data_fingerprint(a) == data_fingerprint(replace(a, fingerprint="other", test=a.test.iloc[:3]))
    edited = replace(a, train=a.train.assign(text=a.train["text"].str.upper()))
    assert data_fingerprint(edited) != data_fingerprint(a)
    relabelled = replace(a, eval=a.eval.assign(label=a.eval["label"].iloc[::-1].to_numpy()))
    assert data_fingerprint(relabelled) != data_fingerprint(a)


def test_a_finished_run_is_not_resumed(tiny_model_dir, bundle, tmp_path):
    cfg = make_config(tiny_model_dir, max_steps=2, eval_steps=2)  # keep_checkpoints: True in these tests
    train(cfg, bundle, tmp_path / "run")
    with pytest.raises(TrainingError, match="the run finished"):
        train(cfg, bundle, tmp_path / "run", resume=True)
