"""Multi-label rows: a text and a list of labels (`data.multi_label: true`).

A label cell is a JSON list (`["billing", "refund"]`) or, in CSV, a string split on `data.label_separator`
(`billing|refund`). A row that cannot train (no text, no label cell, an empty list unless `data.allow_empty_labels`,
a label outside `data.labels`, a list element that is not a string or number) becomes a BadRow naming its file:line.
LABEL holds the sorted label set as canonical JSON (duplicates, conflicts and the fingerprint compare it as one
string); LABELS holds it as a list.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.config import DataConfig
from tunesmith.data.errors import DataError, quoted
from tunesmith.data.schema import (
    LABEL,
    TEXT,
    BadRowReason,
    CheckedTable,
    RowProblem,
    check_columns,
    sort_rows,
    text_kind,
)

LABELS = "labels"  # output column of a multi-label bundle: the row's labels as a sorted list




def label_key(labels: Sequence[str]) -> str:
    """The canonical LABEL string of a label set: sorted, as JSON."""
    return json.dumps(sorted(labels), ensure_ascii=False)


def _one(value: Any, column: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowProblem(BadRowReason.INVALID_LABEL, f"a label in column {column!r} is a {type(value).__name__} "
                       f"({str(value)[:40]!r}); expected strings or numbers")
    if isinstance(value, float):
        if math.isnan(value):
            raise RowProblem(BadRowReason.INVALID_LABEL, f"a label in column {column!r} is NaN")
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def parse_labels(value: Any, cfg: DataConfig) -> list[str]:
    """The label list of one cell (deduplicated, file order kept); raises RowProblem."""
    column = cfg.label_column
    if value is None:
        raise RowProblem(BadRowReason.MISSING_LABEL, f"no label list in column {column!r}")
    if isinstance(value, str):
        items: list[Any] = value.split(cfg.label_separator) if value.strip() else []
    elif isinstance(value, list):
        items = value
    else:
        items = [value]  # a lone number is a one-label list
    labels = [_one(v, column) for v in items]
    return list(dict.fromkeys(label for label in labels if label))


def to_labels(raw: dict[str, Any], cfg: DataConfig) -> tuple[list[str], list[str]]:
    """(kept labels, labels removed by data.drop_labels) of one raw row, checked; raises RowProblem."""
    text = raw.get(cfg.text_column)
    kind = text_kind(text)
    if kind:
        reason = {1: BadRowReason.MISSING_TEXT, 2: BadRowReason.NON_STRING_TEXT, 3: BadRowReason.EMPTY_TEXT}[kind]
        what = {1: "no text", 2: f"the text is a {type(text).__name__}, not a string", 3: "the text is empty"}[kind]
        raise RowProblem(reason, f"{what} in column {cfg.text_column!r}")
    labels = parse_labels(raw.get(cfg.label_column), cfg)
    dropped = [label for label in labels if label in cfg.drop_labels]
    labels = [label for label in labels if label not in cfg.drop_labels]
    if cfg.labels is not None:
        unknown = [label for label in labels if label not in cfg.labels]
        if unknown:
            raise RowProblem(BadRowReason.UNKNOWN_LABEL, f"labels {quoted(unknown)} are not in data.labels")
    if not labels and not dropped and not cfg.allow_empty_labels:
        raise RowProblem(BadRowReason.EMPTY_LABELS, f"the label list in column {cfg.label_column!r} is empty "
                       "(set data.allow_empty_labels: true if 'no label applies' is a valid answer)")
    return labels, dropped


def check_multilabel_rows(table, cfg: DataConfig) -> CheckedTable:
    """The multi-label counterpart of `schema.check_rows`: usable rows, bad rows (file:line), excluded counts."""
    check_columns(table, cfg)
    excluded: Counter = Counter()

    def to_row(raw: dict[str, Any], source: str) -> dict[str, Any] | None:
        labels, dropped = to_labels(raw, cfg)
        if dropped and not labels and not cfg.allow_empty_labels:
            excluded.update(dropped)  # every label it had is left out on purpose: the row is too
            return None
        return {TEXT: raw[cfg.text_column], LABEL: label_key(labels), LABELS: sorted(labels)}

    checked = sort_rows(table, to_row, [TEXT, LABEL, LABELS], cfg.slice_columns)
    checked.excluded = excluded
    return checked


def label_set(frames: Sequence[pd.DataFrame]) -> list[str]:
    """Every label that occurs in the frames, sorted."""
    return sorted({label for f in frames for labels in f[LABELS] for label in labels})


def label_counts(rows: pd.DataFrame, labels: Sequence[str]) -> dict[str, int]:
    """Rows carrying each label (a row counts once per label it has)."""
    counts = Counter(label for labels_ in rows[LABELS] for label in labels_)
    return {label: int(counts.get(label, 0)) for label in labels}


def multi_hot(rows: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    """(n, len(labels)) 0/1 matrix of each row's labels, columns in `labels` order."""
    index = {label: i for i, label in enumerate(labels)}
    y = np.zeros((len(rows), len(labels)), dtype=np.float32)
    for r, labels_ in enumerate(rows[LABELS]):
        for label in labels_:
            if label in index:
                y[r, index[label]] = 1.0
    return y


def check_label_sets(splits: dict[str, pd.DataFrame], labels: list[str], keys: dict[str, str]) -> list[str]:
    """Labels in eval/test that train never has are an error (the model cannot learn them); labels of data.labels
    without training rows are a warning."""
    seen = set(label_set([splits["train"]]))
    if len(seen) < 2:
        raise DataError("data.label_column", f"train has {len(seen)} distinct label(s) {quoted(sorted(seen))}; a "
                        "multi-label classifier needs at least 2", "check data.label_column and data.label_separator")
    for name in ("eval", "test"):
        unseen = sorted(set(label_set([splits[name]])) - seen)
        if unseen:
            raise DataError(keys.get(name, "data.split"), f"labels {quoted(unseen)} occur in {name} but never in train, "
                            "so the model cannot learn them",
                            "add training rows with these labels, or leave them out with data.drop_labels")
    missing = [label for label in labels if label not in seen]
    return [f"data.labels {quoted(missing)} have no training rows; the model will never predict them"] if missing else []


def labels_of(splits: dict[str, pd.DataFrame], cfg, files: list) -> tuple[list[str], list[str]]:
    """data.labels, else every label of the train rows; labels eval/test have and train has not are an error."""
    labels = list(cfg.data.labels) if cfg.data.labels else label_set([splits["train"]])
    return labels, check_label_sets(splits, labels, {f.name: f.table.key for f in files})
