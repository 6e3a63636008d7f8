import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.helpers import LABELS, save_classifier

from tunesmith.evaluation import EvalError, evaluate, gate
from tunesmith.evaluation.metrics import CONFUSION_METRICS


def test_flat_metrics_cover_tuned_baseline_uplift_and_champion(evaluated):
    flat = evaluated.flat_metrics()
    for m in (*CONFUSION_METRICS, "log_loss", "ece", "ece_calibrated", "temperature"):
        assert m in flat, m
    for m in ("accuracy", "macro_f1"):
        for key in (f"baseline.{m}", f"uplift.{m}", f"uplift_ci_low.{m}", f"uplift_ci_high.{m}",
                    f"uplift_p_value.{m}", f"champion.{m}", f"vs_champion.{m}", f"vs_champion_ci_low.{m}"):
            assert key in flat, key
        assert flat[f"uplift.{m}"] == pytest.approx(flat[m] - flat[f"baseline.{m}"])
        assert flat[f"uplift_ci_low.{m}"] <= flat[f"uplift.{m}"] <= flat[f"uplift_ci_high.{m}"]
    assert "top_2_accuracy" not in flat  # two labels: top-2 is always 1.0
    assert all(isinstance(v, float) for v in flat.values())


def test_champion_with_reordered_labels_is_aligned_by_name(evaluated):
    # the champion is the tuned model with its label order reversed: after alignment it predicts the same
    assert evaluated.champion["confusion_matrix"] == evaluated.tuned["confusion_matrix"]
    assert evaluated.vs_champion["accuracy"] == {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}


def test_report_dict_is_json_and_has_slices_and_calibration(evaluated, tuned_dir, eval_out_dir):
    data = json.loads(json.dumps(evaluated.to_dict(), allow_nan=False))
    assert data["labels"] == sorted(LABELS) and data["tuned"]["n"] == 60
    assert {"text_length", "genre", "channel"} <= set(data["slices"])
    channel = data["slices"]["channel"]
    phone = next(v for v in channel["values"] if v["value"] == "phone")
    assert phone["n"] == 3 and phone["small"] and "phone (3 rows)" in channel["notes"][0]  # reported, not compared
    assert {"tuned", "baseline", "champion", "ci", "vs_champion"} <= set(channel["values"][0])
    assert channel["gap"] == {} and "fewer than two slices" in channel["notes"][1]  # web alone has 10+ rows
    flat = evaluated.flat_metrics()
    for key in ("slices.max_gap.macro_f1", "slices.genre.max_gap_ci_high.accuracy", "slices.worst_vs_champion.macro_f1"):
        assert key in flat, key
    # the champion predicts exactly as the tuned model: no slice is worse than it
    assert flat["slices.worst_vs_champion.macro_f1"] == 0.0
    saved = json.loads((Path(eval_out_dir) / "calibration.json").read_text())  # the run dir, not the model dir
    assert saved["temperature"] == pytest.approx(evaluated.calibration["temperature"]) and saved["temperature"] > 0
    assert not list(Path(eval_out_dir).glob(".calibration.json.*"))  # no temp file left behind
    assert not (Path(tuned_dir) / "calibration.json").exists()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_evaluate_never_writes_into_the_model_dir(eval_cfg, bundle, tuned_dir, tmp_path):
    model = Path(shutil.copytree(tuned_dir, tmp_path / "registered"))
    before = _snapshot(model)
    for p in [model, *model.iterdir()]:
        p.chmod(0o555 if p.is_dir() else 0o444)  # a registered artifact: read-only (root ignores this, hence the snapshot)
    try:
        report = evaluate(eval_cfg, bundle, model, baseline_proba=np.full((len(bundle.test), 2), 0.5))
        report_with_out = evaluate(eval_cfg, bundle, model, baseline_proba=np.full((len(bundle.test), 2), 0.5),
                                   out_dir=tmp_path / "run")
    finally:
        for p in [model, *model.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert _snapshot(model) == before
    assert report.calibration["temperature"] == report_with_out.calibration["temperature"]
    assert sorted(os.listdir(tmp_path / "run")) == ["calibration.json"]


def test_gate_on_real_report(evaluated, eval_cfg):
    decision = gate(evaluated.flat_metrics(), eval_cfg.gates, primary_metric=eval_cfg.training.metric,
                    has_champion=evaluated.has_champion, champion_note=evaluated.champion_note)
    assert [r.rule for r in decision.rules] == [str(r) for r in eval_cfg.gates.rules]
    assert decision.passed and decision.rules[2].value == 0.0  # vs_champion.accuracy measured, not waived
    assert evaluated.champion_status == "compared" and evaluated.vs_champion_rows == 60
    assert any("no seen_texts.npy" in n for n in evaluated.notes)  # the copy carries no training record


def test_without_champion_and_with_precomputed_baseline(eval_cfg, bundle, tuned_dir):
    n = len(bundle.test)
    perfect = np.eye(2)[[sorted(LABELS).index(x) for x in bundle.test["label"]]]
    report = evaluate(eval_cfg, bundle, tuned_dir, baseline_proba=perfect)
    flat = report.flat_metrics()
    assert report.champion is None and not any(k.startswith(("vs_champion", "champion")) for k in flat)
    assert report.champion_status == "none" and not report.has_champion
    assert flat["baseline.accuracy"] == 1.0 and flat["uplift_ci_high.accuracy"] <= 0
    assert report.baseline_probe == {"method": "precomputed"} and report.tuned["n"] == n
    decision = gate(flat, eval_cfg.gates, primary_metric="macro_f1")
    assert decision.rules[2].passed and decision.rules[2].note == "no champion yet"


def test_model_with_other_labels_is_refused(eval_cfg, bundle, tiny_model_dir, tmp_path):
    other = save_classifier(tiny_model_dir, ["x", "y"], tmp_path / "other")
    with pytest.raises(EvalError, match=r"the model predicts \['x', 'y'\], but the data has labels") as err:
        evaluate(eval_cfg, bundle, other, baseline_proba=np.full((len(bundle.test), 2), 0.5))
    assert str(other) in str(err.value) and "hint:" in str(err.value)


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp, base: tmp / "nomodel", "no such model dir"),
    (lambda tmp, base: (tmp / "empty").mkdir() or tmp / "empty", "not a model dir (has no config.json)"),
    (lambda tmp, base: base, "without a classification head"),  # a base model, not a fine-tuned classifier
])
def test_not_a_classifier_dir_is_an_eval_error(eval_cfg, bundle, tiny_model_dir, tmp_path, make, message):
    path = make(tmp_path, tiny_model_dir)
    with pytest.raises(EvalError, match="hint: pass a trained model folder") as err:
        evaluate(eval_cfg, bundle, path, baseline_proba=np.full((len(bundle.test), 2), 0.5))
    assert str(path) in str(err.value) and message in str(err.value)
    assert isinstance(err.value, ValueError)
