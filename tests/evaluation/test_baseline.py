import numpy as np
import pytest
from tests.evaluation.helpers import make_bundle

from tunesmith.evaluation.baseline import C_GRID, fit_probe, linear_probe


def blobs(n: int, seed: int, classes: int = 3, dim: int = 8):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = np.eye(classes, dim) * 4
    return centers[y] + rng.normal(0, 1, (n, dim)), y


def test_probe_separates_blobs_with_valid_probabilities():
    (xtr, ytr), (xev, yev), (xte, yte) = blobs(150, 0), blobs(60, 1), blobs(60, 2)
    probe = fit_probe(xtr, ytr, xev, yev, xte, 3)
    assert probe.test_proba.shape == (60, 3)
    assert np.allclose(probe.test_proba.sum(1), 1) and (probe.test_proba >= 0).all()
    assert (probe.test_proba.argmax(1) == yte).mean() > 0.9
    assert probe.c in C_GRID and probe.eval_score > 0.9


def test_class_missing_from_train_gets_zero_probability():
    (xtr, ytr), (xev, yev), (xte, _) = blobs(90, 0), blobs(30, 1), blobs(30, 2)
    keep = ytr != 2
    probe = fit_probe(xtr[keep], ytr[keep], xev, yev, xte, 3)
    assert probe.test_proba.shape == (30, 3) and (probe.test_proba[:, 2] == 0).all()
    single = fit_probe(xtr[ytr == 0], ytr[ytr == 0], xev, yev, xte, 3)
    assert single.c is None and np.allclose(single.test_proba, [1, 0, 0])


def test_linear_probe_on_tiny_model(eval_cfg):
    bundle = make_bundle(40, 20, 30)
    probe = linear_probe(eval_cfg, bundle)
    assert probe.test_proba.shape == (30, 2)
    assert np.allclose(probe.test_proba.sum(1), 1) and (probe.test_proba >= 0).all()
    assert probe.to_dict()["C"] == pytest.approx(probe.c)
