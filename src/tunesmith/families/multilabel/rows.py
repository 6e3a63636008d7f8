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
    ORDER,
    SOURCE,
    TEXT,
    BadRow,
    BadRowReason,
    CheckedTable,
    _text_kind,
    check_columns,
    plain,
)

LABELS = "labels"  # output column of a multi-label bundle: the row's labels as a sorted list


class _Problem(ValueError):
    def __init__(self, reason: BadRowReason, detail: str):
        self.reason = reason
        super().__init__(detail)


def label_key(labels: Sequence[str]) -> str:
    """The canonical LABEL string of a label set: sorted, as JSON."""
    return json.dumps(sorted(labels), ensure_ascii=False)


def _one(value: Any, column: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Problem(BadRowReason.INVALID_LABEL, f"a label in column {column!r} is a {type(value).__name__} "
                       f"({str(value)[:40]!r}); expected strings or numbers")
    if isinstance(value, float):
        if math.isnan(value):
            raise _Problem(BadRowReason.INVALID_LABEL, f"a label in column {column!r} is NaN")
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def parse_labels(value: Any, cfg: DataConfig) -> list[str]:
    """The label list of one cell (deduplicated, file order kept); raises _Problem."""
    column = cfg.label_column
    if value is None:
        raise _Problem(BadRowReason.MISSING_LABEL, f"no label list in column {column!r}")
    if isinstance(value, str):
        items: list[Any] = value.split(cfg.label_separator) if value.strip() else []
    elif isinstance(value, list):
        items = value
    else:
        items = [value]  # a lone number is a one-label list
    labels = [_one(v, column) for v in items]
    return list(dict.fromkeys(label for label in labels if label))


def to_labels(raw: dict[str, Any], cfg: DataConfig) -> tuple[list[str], list[str]]:
    """(kept labels, labels removed by data.drop_labels) of one raw row, checked; raises _Problem."""
    text = raw.get(cfg.text_column)
    kind = _text_kind(text)
    if kind:
        reason = {1: BadRowReason.MISSING_TEXT, 2: BadRowReason.NON_STRING_TEXT, 3: BadRowReason.EMPTY_TEXT}[kind]
        what = {1: "no text", 2: f"the text is a {type(text).__name__}, not a string", 3: "the text is empty"}[kind]
        raise _Problem(reason, f"{what} in column {cfg.text_column!r}")
    labels = parse_labels(raw.get(cfg.label_column), cfg)
    dropped = [label for label in labels if label in cfg.drop_labels]
    labels = [label for label in labels if label not in cfg.drop_labels]
    if cfg.labels is not None:
        unknown = [label for label in labels if label not in cfg.labels]
        if unknown:
            raise _Problem(BadRowReason.UNKNOWN_LABEL, f"labels {quoted(unknown)} are not in data.labels")
    if not labels and not dropped and not cfg.allow_empty_labels:
        raise _Problem(BadRowReason.EMPTY_LABELS, f"the label list in column {cfg.label_column!r} is empty "
                       "(set data.allow_empty_labels: true if 'no label applies' is a valid answer)")
    return labels, dropped


def check_multilabel_rows(table, cfg: DataConfig) -> CheckedTable:
    """The multi-label counterpart of `schema.check_rows`: usable rows, bad rows (file:line), excluded counts."""
    check_columns(table, cfg)
    df = table.frame
    bad = list(table.bad)
    excluded: Counter = Counter()
    kept: list[dict[str, Any]] = []
    raw_columns = [c for c in df.columns if c not in (SOURCE, ORDER)]
    if not df.empty:
        for raw, source, order in zip(df[raw_columns].to_dict("records"), df[SOURCE], df[ORDER], strict=True):
            raw = {str(k): plain(v) for k, v in raw.items()}
            try:
                labels, dropped = to_labels(raw, cfg)
            except _Problem as problem:
                bad.append(BadRow(source, problem.reason, str(problem), raw, int(order)))
                continue
            if dropped and not labels and not cfg.allow_empty_labels:
                excluded.update(dropped)  # every label it had is left out on purpose: the row is too
                continue
            row = {TEXT: raw[cfg.text_column], LABEL: label_key(labels), LABELS: sorted(labels)}
            row.update({c: raw.get(c) for c in cfg.slice_columns})
            kept.append({**row, SOURCE: source, ORDER: int(order)})
    bad.sort(key=lambda b: b.order)
    columns = [TEXT, LABEL, LABELS, *cfg.slice_columns, SOURCE, ORDER]
    rows = pd.DataFrame(kept, columns=columns) if kept else pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    rows[ORDER] = rows[ORDER].astype("int64")
    return CheckedTable(rows, bad, excluded)


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
