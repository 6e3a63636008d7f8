import json
from pathlib import Path

import numpy as np
import pytest
from tests.evaluation.helpers import LABELS, save_classifier

from tunesmith.evaluation import evaluate, gate
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


def test_report_dict_is_json_and_has_slices_and_calibration(evaluated, tuned_dir):
    data = json.loads(json.dumps(evaluated.to_dict(), allow_nan=False))
    assert data["labels"] == sorted(LABELS) and data["tuned"]["n"] == 60
    assert {"text_length", "genre", "channel"} <= set(data["slices"])
    channel = data["slices"]["channel"]
    assert channel["skipped"] == [{"value": "phone", "n": 3}]
    assert {"tuned", "baseline", "champion"} <= set(channel["values"][0])
    saved = json.loads((Path(tuned_dir) / "calibration.json").read_text())
    assert saved["temperature"] == pytest.approx(evaluated.calibration["temperature"]) and saved["temperature"] > 0
    assert not list(Path(tuned_dir).glob(".calibration.json.*"))  # no temp file left behind


def test_gate_on_real_report(evaluated, eval_cfg):
    decision = gate(evaluated.flat_metrics(), eval_cfg.gates, primary_metric=eval_cfg.training.metric)
    assert [r.rule for r in decision.rules] == [str(r) for r in eval_cfg.gates.rules]
    assert decision.passed and decision.rules[2].value == 0.0  # vs_champion.accuracy measured, not waived


def test_without_champion_and_with_precomputed_baseline(eval_cfg, bundle, tuned_dir):
    n = len(bundle.test)
    perfect = np.eye(2)[[sorted(LABELS).index(x) for x in bundle.test["label"]]]
    report = evaluate(eval_cfg, bundle, tuned_dir, baseline_proba=perfect)
    flat = report.flat_metrics()
    assert report.champion is None and not any(k.startswith(("vs_champion", "champion")) for k in flat)
    assert flat["baseline.accuracy"] == 1.0 and flat["uplift_ci_high.accuracy"] <= 0
    assert report.baseline_probe == {"method": "precomputed"} and report.tuned["n"] == n
    decision = gate(flat, eval_cfg.gates, primary_metric="macro_f1")
    assert decision.rules[2].passed and decision.rules[2].note == "no champion yet"


def test_model_with_other_labels_is_refused(eval_cfg, bundle, tiny_model_dir, tmp_path):
    other = save_classifier(tiny_model_dir, ["x", "y"], tmp_path / "other")
    with pytest.raises(ValueError, match="the model predicts"):
        evaluate(eval_cfg, bundle, other, baseline_proba=np.full((len(bundle.test), 2), 0.5))


def test_champion_with_other_labels_is_noted_not_compared(eval_cfg, bundle, tuned_dir, tiny_model_dir, tmp_path):
    other = save_classifier(tiny_model_dir, ["x", "y", "z"], tmp_path / "other")
    report = evaluate(eval_cfg, bundle, tuned_dir, champion_dir=other,
                      baseline_proba=np.full((len(bundle.test), 2), 0.5))
    assert report.champion is None and report.vs_champion is None
    assert "not compared" in report.notes[0]
