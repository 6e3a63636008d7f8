"""Metrics per slice: per value of each slice column, for the tuned model and the baseline.

`text_length` is built in: test texts bucketed into short / medium / long by the tertiles of their
whitespace-token counts, so "does it fail on long tickets?" needs no extra column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from tunesmith.evaluation.metrics import confusion_counts, confusion_scores

TEXT_LENGTH = "text_length"
MIN_SLICE_N = 10  # smaller slices are listed as skipped: their scores would be noise
MISSING = "(missing)"


def text_length_buckets(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, str]]:
    """Each text's bucket (short / medium / long by tertiles of token count) and each bucket's token range."""
    counts = np.array([len(str(t).split()) for t in texts])
    if len(counts) == 0:
        return np.array([], dtype=object), {}
    q1, q2 = np.quantile(counts, [1 / 3, 2 / 3])
    buckets = np.where(counts <= q1, "short", np.where(counts <= q2, "medium", "long")).astype(object)
    ranges = {}
    for name in ("short", "medium", "long"):
        sel = counts[buckets == name]
        if len(sel):
            ranges[name] = f"{sel.min()}-{sel.max()} tokens"
    return buckets, ranges


def _scores(y: np.ndarray, pred: np.ndarray, num_classes: int) -> dict[str, float]:
    s = confusion_scores(confusion_counts(y, pred, num_classes))
    return {"accuracy": s["accuracy"], "macro_f1": s["macro_f1"]}


def _column_values(test: pd.DataFrame, column: str) -> tuple[np.ndarray, dict[str, str]]:
    if column == TEXT_LENGTH and column not in test.columns:
        return text_length_buckets(test["text"].tolist())
    values = test[column].astype(object).where(test[column].notna(), MISSING)
    return values.map(str).to_numpy(dtype=object), {}


def slice_metrics(
    test: pd.DataFrame,
    y_true: np.ndarray,
    preds: Mapping[str, np.ndarray],
    columns: Sequence[str],
    num_classes: int,
    *,
    min_n: int = MIN_SLICE_N,
) -> dict[str, dict]:
    """Accuracy and macro-F1 per slice value for each model in `preds` (e.g. tuned and baseline).

    Args:
        test: the test split (a `text` column plus slice columns), row-aligned with y_true and preds.
        y_true: class ids of the test rows.
        preds: model name -> predicted class ids.
        columns: slice columns; `text_length` is computed from `text` when the split has no such column.
        num_classes: number of labels.
        min_n: values with fewer rows are listed under `skipped`, not scored.

    Returns:
        {column: {"values": [{value, n, <model>: {accuracy, macro_f1}}...], "skipped": [{value, n}],
        "ranges": {...} (text_length only), "error": str (column absent)}}.
    """
    y_true = np.asarray(y_true)
    out: dict[str, dict] = {}
    for column in columns:
        if column != TEXT_LENGTH and column not in test.columns:
            out[column] = {"values": [], "skipped": [], "error": f"column {column!r} is not in the test split"}
            continue
        values, ranges = _column_values(test, column)
        scored, skipped = [], []
        uniq, counts = np.unique(values, return_counts=True) if len(values) else ([], [])
        order = {"short": 0, "medium": 1, "long": 2} if ranges else {}  # length buckets in their natural order
        for value, n in sorted(zip(uniq, counts, strict=True), key=lambda vc: (order.get(vc[0], 3), -vc[1], str(vc[0]))):
            if n < min_n:
                skipped.append({"value": str(value), "n": int(n)})
                continue
            mask = values == value
            row = {"value": str(value), "n": int(n)}
            row.update({name: _scores(y_true[mask], np.asarray(p)[mask], num_classes) for name, p in preds.items()})
            scored.append(row)
        out[column] = {"values": scored, "skipped": skipped, "min_n": min_n}
        if ranges:
            out[column]["ranges"] = ranges
    return out
