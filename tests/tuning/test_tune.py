"""`tunesmith tune`: search-block validation, pruning that stops training, and two workers sharing one study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from tests.toy import make_reviews
from tests.training.conftest import make_bundle, make_config

from tunesmith.config import ConfigError, config_from_dict
from tunesmith.training import train
from tunesmith.tuning import OptunaPruning


def _raw(search: dict) -> dict:
    return {"name": "toy", "data": {"path": "x.csv"}, "search": search}


def test_search_block_errors_name_the_key_path():
    with pytest.raises(ConfigError) as err:
        config_from_dict(_raw({"space": {"training.lerning_rate": {"low": 1e-5, "high": 1e-3, "log": True}}}))
    assert "search.space.training.lerning_rate: not a config key (did you mean 'training.learning_rate'?)" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config_from_dict(_raw({"space": {"training.learning_rate": {"low": 1e-3, "high": 1e-5}}}))
    assert "search.space.training.learning_rate" in str(err.value) and "above high" in str(err.value)
    with pytest.raises(ConfigError) as err:
        config_from_dict(_raw({"space": {"training.epochs": {"choices": [1, 2]}}, "n_trials": None}))
    assert "set n_trials, timeout_s or both" in str(err.value)
    cfg = config_from_dict(_raw({"space": {"method.lora.r": {"low": 4, "high": 16}, "training.batch_size": {"choices": [8, 16]}}}))
    assert cfg.search.space["method.lora.r"].is_int and not cfg.search.space["training.batch_size"].is_int


def test_pruned_trial_stops_training_at_the_first_evaluation(tmp_path, tiny_model_dir):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))  # always prunes
    trial = study.ask()
    cb = OptunaPruning(trial, "eval_macro_f1")
    result = train(make_config(tiny_model_dir, eval_steps=5, keep_checkpoints=False), make_bundle(), tmp_path / "run",
                   callbacks=[cb])
    steps = [row["step"] for row in result.log_history if "eval_macro_f1" in row]
    assert cb.pruned_at == 5 and steps == [5]  # 20 steps planned; stopped after the first report
    assert study.trials[0].intermediate_values.keys() == {5}


def _tunesmith(*args, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "tunesmith.cli", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(proc: subprocess.Popen) -> str:
    out, errs = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{errs}"
    return out


@pytest.mark.integration
def test_two_workers_share_one_study_and_best_yaml_runs(tmp_path, tiny_model_dir):
    make_reviews(200, seed=7).to_csv(tmp_path / "reviews.csv", index=False)
    cfg = {
        "name": "toy-tune",
        "data": {"path": "reviews.csv", "labels": ["neg", "pos"], "split": {"eval": 0.2, "test": 0.2},
                 "checks": {"label_issues": {"enabled": False}}},
        "model": {"base": tiny_model_dir, "max_length": 32},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-4, "eval_steps": 4, "num_threads": 1,
                     "early_stopping_patience": None},
        "evaluation": {"bootstrap": {"samples": 100}},
        "gates": ["accuracy >= 0.5"],
        "search": {"n_trials": 4, "startup_trials": 2, "pruner": "median", "max_train_rows": 64,
                   "space": {"training.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
                             "training.batch_size": {"choices": [8, 16]}},
                   "overrides": {"training.epochs": 1}},
    }
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    workers = [_tunesmith("tune", "config.yaml", "--storage", storage, "--study", "shared", cwd=tmp_path)
               for _ in range(2)]
    outs = [_wait(w) for w in workers]

    study = optuna.load_study(study_name="shared", storage=storage)
    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert sorted(t.number for t in done) == [0, 1, 2, 3]  # the requested total, no trial run twice
    assert done[0].user_attrs.get("default") and done[0].params["training.learning_rate"] == pytest.approx(1e-4)
    ran = [int(line.split("trial ")[1].split(":")[0]) for out in outs for line in out.splitlines()
           if "eval_macro_f1=" in line and "· trial" in line]
    assert sorted(ran) == [0, 1, 2, 3]  # each trial trained by exactly one worker

    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / '.tunesmith/mlflow.db'}")
    exp = client.get_experiment_by_name("toy-tune")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("tunesmith.kind") == "tune"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert all("training.learning_rate" in r.data.params and "eval_metric" in r.data.metrics for r in children)
    assert {r.data.tags["tunesmith.trial_state"] for r in children} <= {"complete", "pruned"}

    best_path = tmp_path / ".tunesmith/runs/toy-tune/tune/shared/best.yaml"
    best = yaml.safe_load(best_path.read_text())
    assert best["training"]["learning_rate"] == pytest.approx(study.best_trial.params["training.learning_rate"])
    assert "search" not in best and best["training"]["epochs"] == 2  # trial-only overrides stay out
    assert Path(best["data"]["path"]).is_absolute()
    elsewhere = tmp_path / "elsewhere"  # best.yaml runs from any folder: its data paths are absolute
    elsewhere.mkdir()
    out = _wait(_tunesmith("run", best_path, cwd=elsewhere))
    assert "gate decision: PASSED" in out and "registered toy-tune version 1" in out
    _reproduce_the_registered_version(elsewhere, tmp_path / "reviews.csv")


def _reproduce_the_registered_version(cwd: Path, data_file: Path) -> None:
    """Reproducibility on the version best.yaml registered (sharing its run keeps the suite short): the run records
    versions and hardware, `reproduce` gets the same weights hash and metrics, and changed data is refused."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{cwd / '.tunesmith/mlflow.db'}")
    version = client.get_model_version("toy-tune", "1")
    tags = client.get_run(version.run_id).data.tags
    for key in ("torch_version", "transformers_version", "peft_version", "trl_version",
                "sentence-transformers_version", "tunesmith_version", "cpu_model", "torch_threads", "device"):
        assert tags.get(key) and version.tags.get(key) == tags[key], key
    assert len(version.tags["weights_sha256"]) == 64

    out = _wait(_tunesmith("reproduce", "toy-tune:1", cwd=cwd))
    assert "weights: identical" in out and "REPRODUCED" in out and "NOT REPRODUCED" not in out
    compared = int(out.split("metrics: ")[1].split("/")[1].split()[0])
    assert compared >= 5 and f"{compared}/{compared} identical" in out
    assert len(client.search_model_versions("name='toy-tune'")) == 1  # the reproduction registered nothing

    make_reviews(210, seed=7).to_csv(data_file, index=False)  # the data changed: refused before any training
    from tests.integration.test_cli_run import in_process

    refused = in_process("reproduce", "toy-tune:1", cwd=cwd, check_code=2).output
    assert "the data changed since it was trained" in refused and "Traceback" not in refused


def test_a_worker_that_loses_the_race_to_set_a_best_tag_sets_it_again():
    from mlflow.exceptions import MlflowException

    from tunesmith.tuning.study import _Tracker

    calls = []

    class Client:  # the store raises for the second of two workers inserting the same tag at once
        def set_tag(self, run_id, key, value):
            calls.append(key)
            if len(calls) == 1:
                raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: tags.key, tags.run_uuid")

    tracker = _Tracker.__new__(_Tracker)
    tracker.client, tracker.parent_run_id = Client(), "parent"
    tracker._set_tag("best_trial", "3")
    assert calls == ["best_trial", "best_trial"]

    class Broken:
        def set_tag(self, run_id, key, value):
            raise MlflowException("RESOURCE_DOES_NOT_EXIST: run parent")

    tracker.client = Broken()
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):  # anything else is not retried
        tracker._set_tag("best_trial", "3")
