"""`training.auto`: the search before the final training keeps its budget and never sees the test split; the
fallback candidate when fine-tuning loses to the probe on eval."""

from __future__ import annotations

import json
from pathlib import Path

from tests.training.conftest import make_bundle

from tunesmith.config import config_from_dict
from tunesmith.training import TrainResult
from tunesmith.training.fit import SETTINGS_FILE, best_candidate, fit_settings

FAST = {"precision": "fp32", "eval_steps": 5, "num_threads": 1, "early_stopping_patience": None}


def _cfg(model_dir: str, **training):
    return config_from_dict({"name": "toy", "data": {"path": "unused.csv"},
                             "model": {"base": model_dir, "max_length": 32}, "training": {**FAST, **training}})


def test_search_keeps_its_budget_and_never_sees_test_rows(tmp_path, tiny_model_dir, monkeypatch):
    import tunesmith.training as training
    from tunesmith.tuning.auto import search

    seen = []
    real_train = training.train

    def spy(cfg, bundle, run_dir, **kw):  # every trial's data
        seen.append((len(bundle.test), len(bundle.train), len(bundle.eval), cfg.training.learning_rate))
        return real_train(cfg, bundle, run_dir, **kw)

    monkeypatch.setattr(training, "train", spy)
    cfg = _cfg(tiny_model_dir, learning_rate=5e-3, auto={"budget_minutes": 0.05})  # 3 s; the rate is the user's
    lines: list[str] = []
    fitted, settings = fit_settings(cfg, make_bundle(), tmp_path, say=lines.append, search=search)
    record = settings["search"]
    # No trial starts after the 3 s budget (checked on the trials' own start times, not on this box's speed), and
    # a trial still running then is cut at its next step: it never runs its full 12 epochs.
    assert all(t["started_s"] is not None and t["started_s"] < 3 for t in record["trial_log"])
    from transformers import TrainerControl

    from tunesmith.tuning.auto import Deadline

    running, over = Deadline(float("inf")), Deadline(0.0)  # before and after the budget's end
    assert not running.on_step_end(None, None, TrainerControl()).should_training_stop and not running.stopped
    control = over.on_step_end(None, None, TrainerControl())
    assert control.should_training_stop and control.should_evaluate and over.stopped  # cut, scored once more
    assert record["trials"] >= 1 and seen and all(test == 0 and (tr, ev) == (160, 40) for test, tr, ev, _ in seen)
    assert {lr for *_, lr in seen} == {5e-3}  # an explicit value is not searched
    assert "training.learning_rate" not in record["trial_log"][0]["params"]
    assert record["trial_log"][0]["params"]["training.epochs"] == 12  # trial 0: the values derived from the data
    assert fitted.training.auto is None and fitted.training.learning_rate == 5e-3
    searched = {k: v for k, v in settings["keys"].items() if v["source"] == "search"}
    if record["status"] == "done" and not record["kept_derived"]:
        assert searched and all(fitted.training.model_dump()[k] == v["value"] for k, v in searched.items())
    elif record["status"] == "done":
        assert "kept by the search" in settings["keys"]["epochs"]["why"] and fitted.training.epochs == 12
    assert json.loads((tmp_path / SETTINGS_FILE).read_text())["keys"]["learning_rate"]["source"] == "config"
    assert any(line.startswith("training: epochs") for line in lines)


def _result(model_dir: Path, best: float) -> TrainResult:
    return TrainResult(model_dir=model_dir, method="full", precision="fp32", trainable_params=1, total_params=1,
                       train_runtime_s=1.0, train_examples_per_s=1.0, best_metric=best, best_checkpoint=None)


def test_fallback_keeps_the_better_candidate_on_eval(tmp_path, tiny_model_dir):
    bundle = make_bundle()
    cfg = _cfg(tiny_model_dir, epochs=2, batch_size=16, learning_rate=5e-3)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "fine-tuned.txt").write_text("the fine-tuned weights")
    lines: list[str] = []

    kept, record = best_candidate(cfg, bundle, run, _result(run / "model", 1.0), say=lines.append)
    assert record["chosen"] == "fine-tuned" and "not below the probe" in record["why"] and not lines

    off = cfg.model_copy(update={"training": cfg.training.model_copy(update={"fallback": "off"})})
    kept, record = best_candidate(off, bundle, run, _result(run / "model", 0.0), say=lines.append)
    assert record["chosen"] == "fine-tuned" and "training.fallback: off" in record["why"]
    assert "fine-tuning did not beat the linear-probe baseline on the eval split" in lines[0]

    private = _cfg(tiny_model_dir, epochs=2, batch_size=16, learning_rate=5e-3, privacy={"epsilon": 8})
    _, record = best_candidate(private, bundle, run, _result(run / "model", 0.0), say=lines.append)
    assert record["chosen"] == "fine-tuned" and "spend the privacy budget again" in record["why"]

    chosen, record = best_candidate(cfg, bundle, run, _result(run / "model", 0.0), say=lines.append)
    assert record["chosen"] == "head-only" and record["head_only"] > 0.0 and record["probe"] > 0.0
    assert record["head_only_settings"]["learning_rate"] == 2e-3  # the head's own rate, not the full run's 5e-3
    assert chosen.model_dir == run / "model" and (run / "model" / "config.json").is_file()
    assert chosen.method == "head"
    assert (run / "candidates" / "fine-tuned" / "model" / "fine-tuned.txt").is_file()
    assert any("head-only" in line and "gates decide" in line for line in lines)
