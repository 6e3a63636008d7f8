"""Multi-label evaluation arithmetic: thresholds come from the eval split only, bootstrap statistics agree with the
point metrics, per-label calibration."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.families.multilabel.evaluate import label_ece, metric_stats, tune_thresholds
from tunesmith.families.multilabel.model import multilabel_scores, pos_weight


def test_thresholds_are_the_best_f1_on_the_rows_given_and_default_without_positives():
    rng = np.random.default_rng(0)
    y = (rng.random((400, 3)) < 0.3).astype(float)
    y[:, 2] = 0  # label 2 never occurs: its threshold stays 0.5
    # label 0: positives score ~0.3, negatives ~0.1 -> a low threshold; label 1: positives ~0.9, negatives ~0.6
    p = np.where(y > 0, [0.3, 0.9, 0.5], [0.1, 0.6, 0.2]) + rng.normal(0, 0.02, y.shape)
    thr = tune_thresholds(p, y)
    assert 0.1 < thr[0] <= 0.3 and 0.6 < thr[1] <= 0.9 and thr[2] == 0.5
    tuned = multilabel_scores(y[:, :2], p[:, :2] >= thr[None, :2])["micro_f1"]
    assert tuned == 1.0 and multilabel_scores(y[:, :2], p[:, :2] >= 0.5)["micro_f1"] < 0.8
    shifted = tune_thresholds(np.clip(p + 0.2, 0, 1), y)  # other rows, other thresholds: nothing is hard-coded
    assert shifted[0] > thr[0]


def test_bootstrap_statistics_match_the_point_metrics():
    rng = np.random.default_rng(1)
    y, pred = rng.random((50, 4)) < 0.4, rng.random((50, 4)) < 0.4
    point = multilabel_scores(y, pred)
    full = np.arange(50)[None]
    for name, stat in metric_stats(y, pred).items():
        assert stat(full)[0] == pytest.approx(point[name]), name


def test_label_ece_and_pos_weight():
    y = np.array([1, 0] * 50, dtype=float)
    assert label_ece(np.full(100, 0.5), y, 10) == pytest.approx(0.0)
    assert label_ece(np.full(100, 0.9), y, 10) == pytest.approx(0.4)
    w = pos_weight(np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=float))
    assert w.tolist() == pytest.approx([3.0, 3.0])
