"""The Trainer's wiring: checkpoints are picked by the same metric code that gates them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from tests.training.conftest import make_config
from transformers import EvalPrediction

from tunesmith.evaluation.metrics import classification_metrics
from tunesmith.training.trainer import compute_metrics, training_arguments


def test_compute_metrics_agrees_with_the_gate_metrics_and_sklearn():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 4))
    logits[:, 3] -= 10  # class 3 is never predicted, and (below) never true: left out of macro averages
    labels = rng.integers(0, 3, size=50)
    got = compute_metrics(EvalPrediction(predictions=(logits,), label_ids=labels))
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    gated = classification_metrics(labels, proba, ["a", "b", "c", "d"])
    assert got == {k: gated[k] for k in ("accuracy", "macro_f1", "weighted_f1")}
    preds = logits.argmax(1)
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert got["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro", zero_division=0))
    assert got["weighted_f1"] == pytest.approx(f1_score(labels, preds, average="weighted", zero_division=0))


@pytest.mark.parametrize(("metric", "greater"), [("macro_f1", True), ("accuracy", True), ("loss", False)])
def test_the_best_checkpoint_direction_follows_the_metric(tiny_model_dir, tmp_path, metric, greater):
    args = training_arguments(make_config(tiny_model_dir, metric=metric), str(tmp_path), "fp32", n_train=10,
                              has_eval=True)
    assert args.metric_for_best_model in (metric, f"eval_{metric}") and args.greater_is_better is greater
