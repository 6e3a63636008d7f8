"""Reviewing a regression model's answers: the text and the predicted value, which the reviewer corrects."""

from __future__ import annotations

import numpy as np


def items(rows: list[dict], _labels) -> list[dict]:
    """Each served value; uncertainty: how unusual the value is within the window (the rank of its distance from
    the window's median), since a point prediction carries no confidence of its own."""
    served = [(i, r["input"], float(r["output"])) for i, r in enumerate(rows)
              if isinstance(r["input"], str) and isinstance(r["output"], int | float) and np.isfinite(r["output"])]
    if not served:
        return []
    values = np.array([v for _, _, v in served])
    distance = np.abs(values - np.median(values))
    ranks = distance.argsort().argsort() / max(len(values) - 1, 1)
    return [{"index": i, "text": text, "guess": value, "uncertainty": float(rank), "context": {}}
            for (i, text, value), rank in zip(served, ranks, strict=True)]


def agree(a, b) -> float:
    """1 - |a - b| / (|a| + |b|): 1 for the same value, 0 for opposite signs or one of them 0 and the other not."""
    a, b = float(a), float(b)
    scale = abs(a) + abs(b)
    return 1.0 - abs(a - b) / scale if scale else 1.0
