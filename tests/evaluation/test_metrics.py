import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from tunesmith.evaluation.metrics import (
    classification_metrics,
    confusion_counts,
    confusion_scores,
    is_known_metric,
    label_ids,
    scalar_metrics,
)

LABELS = ["a", "b", "c"]
Y = np.array([0, 0, 1, 1, 2, 2])
# argmax: 0, 1, 1, 1, 2, 0; second choices chosen so top-2 misses only row 5 (true c, ranked a > b > c)
PROBA = np.array([
    [0.7, 0.2, 0.1],
    [0.3, 0.6, 0.1],
    [0.2, 0.7, 0.1],
    [0.1, 0.8, 0.1],
    [0.1, 0.2, 0.7],
    [0.5, 0.4, 0.1],
])


def test_hand_computed_scores():
    m = classification_metrics(Y, PROBA, LABELS, top_k=[2])
    # per class: tp=[1,2,1], predicted=[2,3,1], support=[2,2,2]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.8)
    assert m["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx(m["macro_f1"])  # equal supports
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert m["macro_recall"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert m["top_2_accuracy"] == pytest.approx(5 / 6)
    expected_ll = -np.mean(np.log([0.7, 0.3, 0.7, 0.8, 0.7, 0.1]))
    assert m["log_loss"] == pytest.approx(expected_ll)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["n"] == 6


def test_matches_sklearn_including_absent_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)  # class 4 never occurs, class 3 is never predicted
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 3, 300))
    pred[pred == 3] = 0
    s = confusion_scores(confusion_counts(y, pred, 5))
    assert s["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert s["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted", zero_division=0))
    assert s["macro_precision"] == pytest.approx(precision_score(y, pred, average="macro", zero_division=0))
    assert s["macro_recall"] == pytest.approx(recall_score(y, pred, average="macro", zero_division=0))


def test_batched_confusion_equals_row_by_row():
    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 3, (4, 50)), rng.integers(0, 3, (4, 50))
    batched = confusion_scores(confusion_counts(y, pred, 3))
    for b in range(4):
        single = confusion_scores(confusion_counts(y[b], pred[b], 3))
        for name, value in single.items():
            assert batched[name][b] == pytest.approx(value)


def test_top_k_only_below_num_classes_and_scalars():
    m = classification_metrics(Y, PROBA, LABELS, top_k=[2, 3, 5])
    assert "top_2_accuracy" in m and "top_3_accuracy" not in m
    scalars = scalar_metrics(m)
    assert set(scalars) == {"accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall", "log_loss",
                            "top_2_accuracy"}
    assert all(is_known_metric(k) for k in scalars)
    assert not is_known_metric("macro_f2")


def test_shape_mismatch_and_empty():
    with pytest.raises(ValueError, match="expected \\(6, 2\\)"):
        classification_metrics(Y, PROBA, ["a", "b"])
    empty = classification_metrics(np.zeros(0, dtype=int), np.zeros((0, 3)), LABELS)
    assert math.isnan(empty["accuracy"]) and empty["n"] == 0


def test_label_ids_names_unknown_labels():
    assert label_ids(["b", "a", "b"], ["a", "b"]).tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="'zz'"):
        label_ids(["a", "zz"], ["a", "b"])
