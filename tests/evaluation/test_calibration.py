import numpy as np
import pytest

from tunesmith.evaluation.calibration import (
    calibration_summary,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
    softmax,
)


def calibrated_logits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary logits [0, z] whose softmax is the true P(y=1): calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return np.stack([np.zeros(n), z], axis=1), y


def test_calibrated_set_has_near_zero_ece():
    logits, y = calibrated_logits(20000, seed=0)
    assert expected_calibration_error(softmax(logits), y, bins=15) < 0.02


def test_overconfident_set_has_high_ece_and_temperature_fixes_it():
    logits_eval, y_eval = calibrated_logits(4000, seed=1)
    logits_test, y_test = calibrated_logits(4000, seed=2)
    over_eval, over_test = logits_eval * 4, logits_test * 4  # overconfident: logits 4x too sharp
    assert expected_calibration_error(softmax(over_test), y_test) > 0.1
    t = fit_temperature(over_eval, y_eval)
    assert 3.0 < t < 5.0
    summary = calibration_summary(over_eval, y_eval, over_test, y_test, bins=15)
    assert summary["temperature"] == pytest.approx(t)
    assert summary["ece_calibrated"] < summary["ece"] / 3
    assert summary["nll_calibrated"] < summary["nll"]
    assert nll(over_test, y_test, t) == pytest.approx(summary["nll_calibrated"])


def test_temperature_does_not_change_predictions_and_can_be_off():
    logits, y = calibrated_logits(500, seed=3)
    assert (softmax(logits, 3.0).argmax(1) == logits.argmax(1)).all()
    summary = calibration_summary(logits * 4, y, logits * 4, y, temperature_scaling=False)
    assert summary["temperature"] == 1.0 and summary["ece"] == summary["ece_calibrated"]
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 1.0


def test_reliability_bins():
    proba = np.array([[0.95, 0.05], [0.9, 0.1], [0.45, 0.55], [0.5, 0.5]])
    y = np.array([0, 1, 1, 0])
    rel = reliability_bins(proba, y, bins=10)
    assert sum(rel["count"]) == 4 and len(rel["count"]) == 10
    assert rel["count"][4] == 1 and rel["count"][5] == 1 and rel["count"][8] == 1 and rel["count"][9] == 1
    assert rel["accuracy"][8] == 0.0 and rel["confidence"][9] == pytest.approx(0.95)
    assert rel["confidence"][0] is None  # empty bin
    # ECE by hand: |1-.5|*1 + |1-.55|*1 + |0-.9|*1 + |1-.95|*1 over 4
    assert expected_calibration_error(proba, y, bins=10) == pytest.approx((0.5 + 0.45 + 0.9 + 0.05) / 4)
