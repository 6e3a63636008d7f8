import numpy as np
import pytest
from sklearn.metrics import f1_score

from tunesmith.evaluation.calibration import expected_calibration_error
from tunesmith.evaluation.significance import (
    bootstrap_delta,
    confusion_metric,
    metric_stats,
    paired_bootstrap,
)


def noisy(y: np.ndarray, keep: float, seed: int, classes: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(y)) < keep, y, rng.integers(0, classes, len(y)))


Y = np.random.default_rng(0).integers(0, 3, 1500)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_identical_predictions_give_zero_delta_and_ci(metric):
    pred = noisy(Y, 0.7, seed=1)
    r = paired_bootstrap(Y, pred, pred, metric, samples=300, confidence=0.95, seed=0)
    assert r == {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1"])
def test_clearly_better_model_has_ci_above_zero(metric):
    better, worse = noisy(Y, 0.85, seed=2), noisy(Y, 0.6, seed=3)
    r = paired_bootstrap(Y, better, worse, metric, samples=1000, confidence=0.95, seed=0)
    assert 0 < r["ci_low"] < r["delta"] < r["ci_high"]
    assert r["p_value"] < 0.01
    flipped = paired_bootstrap(Y, worse, better, metric, samples=1000, confidence=0.95, seed=0)
    assert flipped["ci_high"] < 0 and flipped["delta"] == pytest.approx(-r["delta"])


def test_close_models_are_not_significant():
    a, b = noisy(Y, 0.70, seed=4), noisy(Y, 0.70, seed=5)
    r = paired_bootstrap(Y, a, b, "accuracy", samples=500, seed=0)
    assert r["ci_low"] < 0 < r["ci_high"] and r["p_value"] > 0.05


def test_delta_is_the_full_set_metric_and_seed_reproduces():
    a, b = noisy(Y, 0.8, seed=6), noisy(Y, 0.7, seed=7)
    r = paired_bootstrap(Y, a, b, "macro_f1", samples=200, seed=3)
    assert r["delta"] == pytest.approx(f1_score(Y, a, average="macro") - f1_score(Y, b, average="macro"))
    assert paired_bootstrap(Y, a, b, "macro_f1", samples=200, seed=3) == r
    # a custom batched metric works the same as the built-in
    custom = paired_bootstrap(Y, a, b, lambda y, p: (y == p).mean(axis=1), samples=200, seed=3)
    assert custom == paired_bootstrap(Y, a, b, confusion_metric("accuracy", 3), samples=200, seed=3)


def test_bad_input():
    with pytest.raises(ValueError, match="one entry per example"):
        paired_bootstrap(Y, Y[:-1], Y, "accuracy")
    with pytest.raises(ValueError, match="no batched metric"):
        paired_bootstrap(Y, Y, Y, "log_loss")


def test_metric_stats_match_point_metrics_on_the_full_set():
    rng = np.random.default_rng(8)
    proba = rng.dirichlet(np.ones(3), size=len(Y))
    stats = metric_stats(Y, proba, top_k=[2], bins=10)
    full = np.arange(len(Y))[None]
    assert set(stats) >= {"accuracy", "macro_f1", "log_loss", "top_2_accuracy", "ece"}
    assert stats["ece"](full)[0] == pytest.approx(expected_calibration_error(proba, Y, bins=10))
    assert stats["accuracy"](full)[0] == pytest.approx((proba.argmax(1) == Y).mean())
    r = bootstrap_delta(len(Y), stats["ece"], stats["ece"], samples=100)
    assert r["ci_low"] == r["ci_high"] == 0.0
