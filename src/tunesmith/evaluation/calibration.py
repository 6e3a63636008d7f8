"""Calibration: expected calibration error, reliability-diagram bins and temperature scaling.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar T fitted on the eval split to
minimise negative log-likelihood; T > 1 softens an overconfident model without changing its argmax.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

_LOG_T_BOUNDS = (np.log(0.05), np.log(20.0))  # T in [0.05, 20] covers any model worth shipping


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1))


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true classes under softmax(logits / T)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-logp[np.arange(len(y)), y].mean()) if len(y) else float("nan")


def bin_index(conf: np.ndarray, bins: int) -> np.ndarray:
    """The equal-width bin (lower, upper] of each confidence; 0.0 falls in the first bin."""
    return np.clip(np.ceil(np.asarray(conf) * bins).astype(np.int64) - 1, 0, bins - 1)


def reliability_bins(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, list]:
    """Equal-width confidence bins (lower, upper] over [0, 1] with mean confidence, accuracy and count.

    Empty bins report None for confidence and accuracy.
    """
    proba = np.asarray(proba, dtype=np.float64)
    conf = proba.max(axis=1) if len(proba) else np.zeros(0)
    correct = (proba.argmax(axis=1) == np.asarray(y)) if len(proba) else np.zeros(0, dtype=bool)
    idx = bin_index(conf, bins)
    count = np.bincount(idx, minlength=bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    acc_sum = np.bincount(idx, weights=correct.astype(float), minlength=bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "lower": edges[:-1].tolist(),
        "upper": edges[1:].tolist(),
        "confidence": [float(s / c) if c else None for s, c in zip(conf_sum, count, strict=True)],
        "accuracy": [float(s / c) if c else None for s, c in zip(acc_sum, count, strict=True)],
        "count": count.tolist(),
    }


def ece_from_bins(rel: dict[str, list]) -> float:
    total = sum(rel["count"])
    if not total:
        return float("nan")
    gaps = (c * abs(a - p) for c, a, p in zip(rel["count"], rel["accuracy"], rel["confidence"], strict=True) if c)
    return float(sum(gaps) / total)


def expected_calibration_error(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    return ece_from_bins(reliability_bins(proba, y, bins))


def fit_temperature(logits_eval: np.ndarray, y_eval: np.ndarray) -> float:
    """The temperature T minimising NLL of softmax(logits / T) on held-out data (1.0 when there is none)."""
    logits_eval, y_eval = np.asarray(logits_eval, dtype=np.float64), np.asarray(y_eval, dtype=np.int64)
    if len(y_eval) == 0:
        return 1.0
    # Optimise log T: a bounded 1-D problem, smooth and convex in 1/T, so Brent's method finds it reliably.
    res = minimize_scalar(lambda log_t: nll(logits_eval, y_eval, float(np.exp(log_t))),
                          bounds=_LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    t = float(np.exp(res.x))
    return t if nll(logits_eval, y_eval, t) <= nll(logits_eval, y_eval, 1.0) else 1.0


def calibration_summary(
    logits_eval: np.ndarray, y_eval: np.ndarray, logits_test: np.ndarray, y_test: np.ndarray,
    *, bins: int = 15, temperature_scaling: bool = True,
) -> dict:
    """ECE and NLL on test before and after a temperature fitted on eval, with reliability bins for both."""
    t = fit_temperature(logits_eval, y_eval) if temperature_scaling else 1.0
    before = reliability_bins(softmax(logits_test), y_test, bins)
    after = reliability_bins(softmax(logits_test, t), y_test, bins)
    return {
        "temperature": t,
        "fitted_on": "eval" if temperature_scaling and len(y_eval) else None,
        "bins": bins,
        "ece": ece_from_bins(before),
        "ece_calibrated": ece_from_bins(after),
        "nll": nll(logits_test, y_test),
        "nll_calibrated": nll(logits_test, y_test, t),
        "reliability": before,
        "reliability_calibrated": after,
    }
