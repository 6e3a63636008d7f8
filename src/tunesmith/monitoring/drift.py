"""Drift tests: a window of logged predictions against the training-time reference (reference.py).

    result = drift_tests(window_texts, window_preds, window_conf, reference, cfg.monitoring.drift,
                         embed=lambda texts: ..., labeled=(proba_rows, y))

Input drift: text length (KS), token distribution (chi-square over the reference's top tokens + the rest),
embeddings (MMD with an RBF kernel, permutation p-value). Prediction drift: PSI and chi-square on predicted
labels, KS on confidences. Calibration drift: ECE of the labeled window rows against the reference ECE.
Each test returns {statistic, p_value, flagged, ...}; `flagged` compares with the configured thresholds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from tunesmith.monitoring.reference import ece, text_length, tokens

EPS = 1e-4  # PSI smoothing: an empty bucket on one side would make the log infinite


def psi(reference: Sequence[float], current: Sequence[float]) -> float:
    """Population stability index of two distributions over the same buckets (counts or shares)."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref = np.clip(ref / max(ref.sum(), 1e-12), EPS, None)
    cur = np.clip(cur / max(cur.sum(), 1e-12), EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def chi_square(reference_counts: Sequence[float], current_counts: Sequence[float]) -> tuple[float, float]:
    """Chi-square test of homogeneity on a 2 x K table; buckets empty on both sides are left out."""
    table = np.array([reference_counts, current_counts], dtype=float)
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2 or (table.sum(1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


def ks(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    result = stats.ks_2samp(np.asarray(reference, dtype=float), np.asarray(current, dtype=float))
    return float(result.statistic), float(result.pvalue)


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0)


def mmd_test(x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0) -> tuple[float, float]:
    """Unbiased MMD^2 between samples x and y (RBF kernel, median-distance bandwidth) and its permutation p-value.

    The kernel matrix of the pooled sample is computed once; each permutation only re-indexes it.
    """
    pooled = np.concatenate([x, y]).astype(np.float64)
    d2 = _sq_dists(pooled, pooled)
    positive = d2[np.triu_indices(len(pooled), 1)]
    positive = positive[positive > 0]
    bandwidth = float(np.median(positive)) if len(positive) else 1.0
    k = np.exp(-d2 / bandwidth)
    n = len(x)

    def stat(idx: np.ndarray) -> float:
        a, b = idx[:n], idx[n:]
        kxx, kyy, kxy = k[np.ix_(a, a)], k[np.ix_(b, b)], k[np.ix_(a, b)]
        m1, m2 = len(a), len(b)
        return ((kxx.sum() - np.trace(kxx)) / (m1 * (m1 - 1)) + (kyy.sum() - np.trace(kyy)) / (m2 * (m2 - 1))
                - 2 * kxy.mean())

    observed = stat(np.arange(len(pooled)))
    rng = np.random.default_rng(seed)
    exceed = sum(stat(rng.permutation(len(pooled))) >= observed for _ in range(permutations))
    return float(observed), float((exceed + 1) / (permutations + 1))


def make_test(kind: str, statistic: float, p_value: float | None, flagged: bool, **extra) -> dict:
    """One test's result as the report shows it."""
    return {"kind": kind, "statistic": round(statistic, 6), "p_value": None if p_value is None else float(p_value),
            "flagged": bool(flagged), **extra}


def input_drift(texts: Sequence[str], reference: dict, settings, embed: Callable | None = None,
                seed: int = 0) -> dict[str, dict]:
    """Text length, token distribution and (when `embed` is given and the reference has them) embedding drift."""
    alpha = settings.p_value
    out: dict[str, dict] = {}
    lengths = [text_length(t) for t in texts]
    stat, p = ks(reference["lengths"], lengths)
    out["text_length"] = make_test("ks", stat, p, p < alpha, reference_mean=float(np.mean(reference["lengths"])),
                               window_mean=float(np.mean(lengths)))
    top = sorted(reference["token_counts"], key=reference["token_counts"].get, reverse=True)[:settings.top_tokens]
    window_counts = Counter(t for text in texts for t in tokens(text))
    ref_top = [reference["token_counts"][t] for t in top]
    cur_top = [window_counts.get(t, 0) for t in top]
    ref_rest = reference["token_total"] - sum(ref_top)
    cur_rest = sum(window_counts.values()) - sum(cur_top)
    stat, p = chi_square([*ref_top, ref_rest], [*cur_top, cur_rest])
    unseen = 1 - sum(window_counts[t] for t in window_counts if t in reference["token_counts"]) / max(
        sum(window_counts.values()), 1)
    out["token_distribution"] = make_test("chi2", stat, p, p < alpha,
                                      psi=round(psi([*ref_top, ref_rest], [*cur_top, cur_rest]), 6),
                                      unseen_token_share=round(unseen, 4))
    if embed is not None and reference.get("embeddings"):
        rng = np.random.default_rng(seed)
        pick = sorted(rng.choice(len(texts), size=min(settings.max_rows, len(texts)), replace=False).tolist())
        current = np.asarray(embed([texts[i] for i in pick]))
        stat, p = mmd_test(np.asarray(reference["embeddings"]), current, permutations=settings.permutations,
                           seed=seed)
        out["embedding_mmd"] = make_test("mmd", stat, p, p < alpha, rows=len(pick))
    return out


def prediction_drift(predicted: Sequence[str], confidences: Sequence[float], reference: dict, settings) -> dict:
    """PSI and chi-square on predicted labels; KS on confidences."""
    labels = list(reference["labels"])
    counts = Counter(predicted)
    ref_counts = [reference["predicted_counts"].get(label, 0) for label in labels]
    cur_counts = [counts.get(label, 0) for label in labels]
    value = psi(ref_counts, cur_counts)
    out = {"label_psi": make_test("psi", value, None, value > settings.psi,
                              reference_share=_shares(labels, ref_counts), window_share=_shares(labels, cur_counts))}
    stat, p = chi_square(ref_counts, cur_counts)
    out["label_chi2"] = make_test("chi2", stat, p, p < settings.p_value)
    stat, p = ks(reference["confidences"], confidences)
    out["confidence_ks"] = make_test("ks", stat, p, p < settings.p_value,
                                 reference_mean=float(np.mean(reference["confidences"])),
                                 window_mean=float(np.mean(confidences)))
    return out


def calibration_drift(proba: np.ndarray, y: np.ndarray, reference: dict, settings, bins: int = 15) -> dict | None:
    """ECE on labeled window rows vs the reference ECE; None without labels or a reference ECE."""
    if len(y) == 0 or reference.get("ece") is None:
        return None
    current = ece(proba, y, bins)
    increase = current - reference["ece"]
    return make_test("ece", increase, None, increase > settings.ece_increase, reference_ece=reference["ece"],
                 window_ece=current, rows=int(len(y)))


def _shares(labels: list[str], counts: list[int]) -> dict[str, float]:
    total = max(sum(counts), 1)
    return {label: round(c / total, 4) for label, c in zip(labels, counts, strict=True)}
