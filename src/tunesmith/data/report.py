"""DataReport: what was read, what was used, what was set aside and why, and how the splits look."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.schema import LABEL, TEXT

CHARS, TOKENS = "_chars", "_tokens"  # lengths measured while reading in batches (the texts are not held)


@dataclass
class DataReport:
    """Counts and distributions of a prepared dataset; `to_dict()` is what data_card.json holds."""

    sources: list[dict[str, Any]]  # {key, path, format, rows_read} per file
    rows_read: int  # every row seen, bad ones included (blank lines are not rows)
    rows_used: int  # rows in train + eval + test
    quarantined: int
    quarantined_by_reason: dict[str, int]
    quarantine_path: str | None  # run_dir/quarantine.jsonl when rows were quarantined and a run_dir was given
    excluded_by_config: dict[str, int]  # rows per label left out by data.drop_labels
    dropped_by_max_rows: int
    labels: list[str]
    split_sizes: dict[str, int]
    label_distribution: dict[str, dict[str, int]]  # split -> label -> rows
    text_length: dict[str, dict[str, dict[str, float]]]  # split -> chars|tokens -> mean|p50|p95|max
    fingerprint: str
    overlap: dict[str, int] = field(default_factory=dict)  # "train/test" -> test rows whose text is also in train
    overlap_examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # pair -> up to 3 {split: source}
    conflicting_duplicates: int = 0  # texts in train that occur with more than one label
    warnings: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)  # data gate -> its policy, status and findings (checks.py)
    truncated: int = 0  # causal-lm conversations cut to model.max_length tokens (data.too_long: truncate)
    quarantine_examples: list[str] = field(default_factory=list)  # the first few as "file:line: reason: detail"
    split_files: dict[str, str] = field(default_factory=dict)  # split -> parquet, when the data was read in batches

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def label_distribution(rows: pd.DataFrame, labels: Sequence[str]) -> dict[str, int]:
    counts = rows[LABEL].value_counts()
    return {label: int(counts.get(label, 0)) for label in labels}


def text_length(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Length in characters and in whitespace-separated tokens (a model-free proxy for max_length)."""
    if CHARS in rows.columns:
        return {"chars": _stats(rows[CHARS]), "tokens": _stats(rows[TOKENS])}
    texts = rows[TEXT].astype("str")
    return {"chars": _stats(texts.str.len()), "tokens": _stats(texts.str.count(r"\S+"))}


def _stats(values: pd.Series) -> dict[str, float]:
    if values.empty:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    x = values.to_numpy(dtype=np.float64)
    return {
        "mean": round(float(x.mean()), 2),
        "p50": round(float(np.percentile(x, 50)), 2),
        "p95": round(float(np.percentile(x, 95)), 2),
        "max": float(x.max()),
    }
