"""Classification metrics over numpy arrays: accuracy, macro/weighted F1, per-class P/R/F1, top-k, log loss.

Scores come from confusion counts, so the same code scores one prediction set or a batch of bootstrap
resamples (`confusion_scores` on a (B, C, C) stack). Macro averages run over the classes that occur in the
true labels or the predictions, as scikit-learn's `f1_score(average="macro")` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# Scores computed from confusion counts; these also get bootstrap CIs (uplift_ci_low.<m>, ...).
CONFUSION_METRICS = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall")
# Every scalar a gate may name without a prefix. top_<k>_accuracy is matched by TOP_K_RE.
KNOWN_METRICS = (*CONFUSION_METRICS, "log_loss", "ece", "ece_calibrated", "nll_calibrated", "temperature")
# causal-lm (evaluation.causal_lm): held-out loss per loss token, its perplexity, and per-answer scores.
CAUSAL_LM_METRICS = ("loss", "perplexity", "rouge_l", "exact_match", "json_valid", "regression_pass_rate")
KNOWN_METRICS = (*KNOWN_METRICS, *CAUSAL_LM_METRICS)
# embedding (evaluation.retrieval): retrieval over a held-out corpus, or correlations for scored pairs;
# regression (evaluation.regression_eval): errors and correlations of a numeric prediction.
EMBEDDING_METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "spearman", "pearson")
REGRESSION_METRICS = ("mae", "rmse", "mse", "spearman", "pearson", "r2")
KNOWN_METRICS = (*KNOWN_METRICS, *EMBEDDING_METRICS, *(m for m in REGRESSION_METRICS if m not in EMBEDDING_METRICS))
# token-classification (evaluation.token_metrics): entity-level micro P/R/F1; macro_* are the classification names.
KNOWN_METRICS = (*KNOWN_METRICS, "f1", "precision", "recall")
# Errors and losses: a smaller value is a better model (temperature is neither; it is reported, not ranked).
LOWER_IS_BETTER = frozenset({"log_loss", "ece", "ece_calibrated", "nll_calibrated", "loss", "perplexity"})
LOWER_IS_BETTER = LOWER_IS_BETTER | {"mae", "rmse", "mse"}
# multi-label classification (evaluation.multilabel_eval): at the per-label thresholds tuned on eval.
MULTILABEL_METRICS = ("micro_f1", "micro_precision", "micro_recall", "subset_accuracy", "hamming_loss")
KNOWN_METRICS = (*KNOWN_METRICS, *MULTILABEL_METRICS)
LOWER_IS_BETTER = LOWER_IS_BETTER | {"hamming_loss"}
TOP_K_RE = re.compile(r"^top_(\d+)_accuracy$")
_EPS = 1e-15


def is_known_metric(name: str) -> bool:
    return name in KNOWN_METRICS or TOP_K_RE.match(name) is not None


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric `name` means a better model (False for losses and calibration errors)."""
    return name not in LOWER_IS_BETTER


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion counts (rows: true class, columns: predicted); (C, C) for 1-D input, (B, C, C) for 2-D."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    batched = y_true.ndim == 2
    yt, yp = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    rows = np.arange(yt.shape[0], dtype=np.int64)[:, None]
    flat = ((rows * num_classes + yt) * num_classes + yp).ravel()
    counts = np.bincount(flat, minlength=yt.shape[0] * num_classes * num_classes)
    counts = counts.reshape(yt.shape[0], num_classes, num_classes)
    return counts if batched else counts[0]


def confusion_scores(conf: np.ndarray) -> dict[str, np.ndarray]:
    """CONFUSION_METRICS from confusion counts; scalars for (C, C) input, (B,) arrays for (B, C, C)."""
    conf = np.asarray(conf, dtype=np.float64)
    single = conf.ndim == 2
    conf = conf[None] if single else conf
    tp = np.diagonal(conf, axis1=1, axis2=2)
    support = conf.sum(axis=2)
    predicted = conf.sum(axis=1)
    total = support.sum(axis=1)
    present = (support + predicted) > 0  # classes seen in y_true or y_pred take part in macro averages
    n_present = np.maximum(present.sum(axis=1), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = 2 * tp + (predicted - tp) + (support - tp)
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
        safe_total = np.maximum(total, 1)
    scores = {
        "accuracy": tp.sum(axis=1) / safe_total,
        "macro_f1": (f1 * present).sum(axis=1) / n_present,
        "weighted_f1": (f1 * support).sum(axis=1) / safe_total,
        "macro_precision": (precision * present).sum(axis=1) / n_present,
        "macro_recall": (recall * present).sum(axis=1) / n_present,
    }
    return {k: float(v[0]) for k, v in scores.items()} if single else scores


def per_class_scores(conf: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (0.0 where undefined, as scikit-learn reports)."""
    tp = np.diag(conf).astype(float)
    support, predicted = conf.sum(axis=1), conf.sum(axis=0)
    out = {}
    for i, label in enumerate(labels):
        p = tp[i] / predicted[i] if predicted[i] else 0.0
        r = tp[i] / support[i] if support[i] else 0.0
        denom = predicted[i] + support[i]
        out[label] = {"precision": float(p), "recall": float(r), "f1": float(2 * tp[i] / denom) if denom else 0.0,
                      "support": int(support[i])}
    return out


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (probabilities clipped away from 0)."""
    if len(y_true) == 0:
        return float("nan")
    p = proba[np.arange(len(y_true)), y_true]
    return float(-np.log(np.clip(p, _EPS, 1.0)).mean())


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k most probable."""
    if len(y_true) == 0:
        return float("nan")
    top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
    return float((top == np.asarray(y_true)[:, None]).any(axis=1).mean())


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, labels: Sequence[str], top_k: Sequence[int] = (2,)
) -> dict:
    """All classification metrics of one model on one split.

    Args:
        y_true: class ids, shape (n,); id = index in `labels`.
        proba: class probabilities, shape (n, len(labels)).
        labels: class names.
        top_k: k values for top-k accuracy; only k < len(labels) is reported (k >= C is always 1.0).

    Returns:
        Scalars (accuracy, macro_f1, weighted_f1, macro_precision, macro_recall, log_loss, top_<k>_accuracy)
        plus `n`, `per_class` ({label: {precision, recall, f1, support}}) and `confusion_matrix` (rows: true).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape != (len(y_true), len(labels)):
        raise ValueError(f"proba has shape {proba.shape}; expected ({len(y_true)}, {len(labels)}) for {len(labels)} labels")
    conf = confusion_counts(y_true, proba.argmax(axis=1), len(labels))
    out: dict = {"n": len(y_true), **confusion_scores(conf), "log_loss": log_loss(y_true, proba)}
    if len(y_true) == 0:
        out.update({k: float("nan") for k in CONFUSION_METRICS})
    for k in sorted(set(top_k)):
        if 0 < k < len(labels):
            out[f"top_{k}_accuracy"] = top_k_accuracy(y_true, proba, k)
    out["per_class"] = per_class_scores(conf, labels)
    out["confusion_matrix"] = conf.tolist()
    return out


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The scalar scores of a `classification_metrics` result (no n, per-class or matrix)."""
    return {k: float(v) for k, v in metrics.items() if k != "n" and isinstance(v, int | float | np.floating)}


def label_ids(names: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Class ids (index in `labels`) of label names; raises ValueError naming any unknown label."""
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({str(n) for n in names if n not in index})
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not in the label set {list(labels)[:10]}")
    return np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))
