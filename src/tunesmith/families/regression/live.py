"""Live quality of a regression model: its served values against the true values that came back."""

from __future__ import annotations

import math


def measure(pairs: list[tuple]) -> dict:
    """MAE, RMSE and Spearman's rho (None with fewer than 3 pairs or a constant side)."""
    pred = [float(out) for out, _, _ in pairs]
    true = [float(value) for _, value, _ in pairs]
    if not pred:
        return {"mae": None, "rmse": None, "spearman": None}
    errors = [p - t for p, t in zip(pred, true, strict=True)]
    rho = None
    if len(pred) >= 3 and len(set(pred)) > 1 and len(set(true)) > 1:
        from scipy.stats import spearmanr

        rho = float(spearmanr(pred, true).statistic)
    return {"mae": sum(abs(e) for e in errors) / len(errors), "rmse": math.sqrt(sum(e * e for e in errors) / len(errors)),
            "spearman": rho}
