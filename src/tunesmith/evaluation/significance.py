"""Paired bootstrap: is model A better than model B on the same test examples, and by how much?

Each resample draws example indices with replacement and scores both models on the same draw, so the
confidence interval of the difference reflects only how the examples were sampled. Scores are computed
for a whole block of resamples at once (a (B, n) index matrix), never one resample at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tunesmith.evaluation.calibration import bin_index
from tunesmith.evaluation.metrics import CONFUSION_METRICS, confusion_counts, confusion_scores

# metric_fn(y, pred) -> scores; y and pred are (B, n) class-id arrays, one row per resample; returns (B,).
BatchMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]
# stat(idx) -> scores of the examples idx (B, n) picks, one score per row; returns (B,).
IndexStat = Callable[[np.ndarray], np.ndarray]
_MAX_CELLS = 4_000_000  # resamples are scored in chunks of at most this many index cells (memory bound)


def confusion_metric(name: str, num_classes: int) -> BatchMetric:
    """A batched metric computed from per-resample confusion counts (one np.bincount per chunk)."""
    if name not in CONFUSION_METRICS:
        raise ValueError(f"no batched metric {name!r}; choose one of {', '.join(CONFUSION_METRICS)}")
    if name == "accuracy":
        return lambda y, pred: (y == pred).mean(axis=1)
    return lambda y, pred: confusion_scores(confusion_counts(y, pred, num_classes))[name]


def bootstrap_delta(
    n: int, stat_a: IndexStat, stat_b: IndexStat, *, samples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Percentile CI and two-sided p-value of stat_a - stat_b over `samples` joint resamples of n examples.

    The p-value of "no difference" is the share of resampled deltas at least as far from the observed
    delta as the observed delta is from 0 (the bootstrap distribution shifted to the null).
    """
    if n == 0:
        return {"delta": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    full = np.arange(n)[None]
    delta = float(stat_a(full)[0] - stat_b(full)[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // n)
    deltas = []
    for start in range(0, samples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, samples - start), n))
        deltas.append(stat_a(idx) - stat_b(idx))
    d = np.concatenate(deltas)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(d, [alpha, 1.0 - alpha])
    p = (1 + np.count_nonzero(np.abs(d - delta) >= abs(delta) - 1e-12)) / (len(d) + 1)
    return {"delta": delta, "ci_low": float(low), "ci_high": float(high), "p_value": float(min(1.0, p))}


def stratified_bootstrap(groups: Sequence[np.ndarray], stat: IndexStat, *, samples: int = 1000,
                         seed: int = 0) -> np.ndarray:
    """`stat` of each group on `samples` resamples drawn within that group: an array (samples, len(groups)).

    Group g's column resamples g's own row indices (len(g) of them, with replacement), so a slice keeps its size
    in every resample; a statistic across groups (the largest gap between slices) is read off each row.
    """
    groups = [np.asarray(g, dtype=np.int64) for g in groups]
    out = np.empty((samples, len(groups)))
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // max(1, sum(len(g) for g in groups)))
    for start in range(0, samples, chunk):
        b = min(chunk, samples - start)
        for j, g in enumerate(groups):
            out[start:start + b, j] = stat(g[rng.integers(0, len(g), size=(b, len(g)))]) if len(g) else np.nan
    return out


def percentile_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The two-sided percentile interval of bootstrap `values` (NaN, NaN when there are none)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_bootstrap(
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    metric_fn: BatchMetric | str,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Bootstrap the difference metric(A) - metric(B) over jointly resampled examples.

    Args:
        y, pred_a, pred_b: class ids of the same n examples, shape (n,).
        metric_fn: a batched metric (see `BatchMetric`) or a name from CONFUSION_METRICS.
        samples: number of resamples.
        confidence: two-sided level of the percentile interval.
        seed: seeds the resampling, so a report can be reproduced.

    Returns:
        delta (on the full set), ci_low, ci_high and p_value (see `bootstrap_delta`).
    """
    y, pred_a, pred_b = (np.asarray(a, dtype=np.int64) for a in (y, pred_a, pred_b))
    if not len(y) == len(pred_a) == len(pred_b):
        raise ValueError(f"y, pred_a and pred_b must have one entry per example; got {len(y)}, {len(pred_a)}, {len(pred_b)}")
    if isinstance(metric_fn, str) and len(y):
        metric_fn = confusion_metric(metric_fn, int(max(y.max(), pred_a.max(), pred_b.max())) + 1)
    return bootstrap_delta(len(y), lambda idx: metric_fn(y[idx], pred_a[idx]),
                           lambda idx: metric_fn(y[idx], pred_b[idx]),
                           samples=samples, confidence=confidence, seed=seed)


def mean_stat(values: np.ndarray) -> IndexStat:
    """A metric that is a mean over examples (accuracy, log loss, top-k hits)."""
    values = np.asarray(values, dtype=np.float64)
    return lambda idx: values[idx].mean(axis=1)


def ece_stat(proba: np.ndarray, y: np.ndarray, bins: int) -> IndexStat:
    """Expected calibration error of each resample: bins are fixed per example, so one bincount per block."""
    proba = np.asarray(proba, dtype=np.float64)
    conf = proba.max(axis=1)
    gap = (proba.argmax(axis=1) == np.asarray(y)).astype(np.float64) - conf  # summed per bin, then |.|
    k = bin_index(conf, bins)

    def stat(idx: np.ndarray) -> np.ndarray:
        rows = np.arange(idx.shape[0])[:, None]
        sums = np.bincount((rows * bins + k[idx]).ravel(), weights=gap[idx].ravel(), minlength=idx.shape[0] * bins)
        return np.abs(sums.reshape(idx.shape[0], bins)).sum(axis=1) / idx.shape[1]

    return stat


def metric_stats(y: np.ndarray, proba: np.ndarray, *, top_k: Sequence[int] = (2,), bins: int = 15) -> dict[str, IndexStat]:
    """A resamplable statistic for every scalar `classification_metrics` reports, plus ece."""
    y, proba = np.asarray(y, dtype=np.int64), np.asarray(proba, dtype=np.float64)
    num_classes = proba.shape[1]
    pred = proba.argmax(axis=1)
    stats: dict[str, IndexStat] = {}
    for name in CONFUSION_METRICS:
        fn = confusion_metric(name, num_classes)
        stats[name] = lambda idx, fn=fn: fn(y[idx], pred[idx])
    p_true = proba[np.arange(len(y)), y] if len(y) else np.zeros(0)
    stats["log_loss"] = mean_stat(-np.log(np.clip(p_true, 1e-15, 1.0)))
    order = np.argsort(-proba, axis=1, kind="stable")
    for k in sorted(set(top_k)):
        if 0 < k < num_classes:
            stats[f"top_{k}_accuracy"] = mean_stat((order[:, :k] == y[:, None]).any(axis=1))
    stats["ece"] = ece_stat(proba, y, bins)
    return stats


def pearson_stat(x: np.ndarray, y: np.ndarray) -> IndexStat:
    """Pearson correlation of x and y on each resample (on ranks: a resample's Spearman, ties as in the full set)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def stat(idx: np.ndarray) -> np.ndarray:
        a, b = x[idx], y[idx]
        a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
        denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        return np.where(denom > 0, (a * b).sum(axis=1) / np.where(denom > 0, denom, 1), 0.0)

    return stat
