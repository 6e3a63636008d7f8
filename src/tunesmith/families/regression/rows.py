"""Regression rows: a text and a numeric target in `data.label_column`.

The text checks are the classification ones (`schema.check_rows`); a target that is not a finite number
("n/a", "3,5", inf, a list) becomes a BadRow with its file:line, so `data.bad_rows` decides its fate. The target is
kept as the text of its float in LABEL (the fingerprint and overlap checks read strings) and as a float in TARGET.
"""

from __future__ import annotations

import math

import pandas as pd

from tunesmith.config import DataConfig
from tunesmith.data.schema import (
    LABEL,
    ORDER,
    SOURCE,
    BadRow,
    BadRowReason,
    CheckedTable,
    check_columns,
    check_rows,
)

TARGET = "target"  # output column of a regression bundle: the float target


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def check_target_rows(table, cfg: DataConfig) -> CheckedTable:
    """Usable (text, numeric target) rows and bad rows (text problems, missing or non-numeric targets)."""
    check_columns(table, cfg)
    checked = check_rows(table, cfg)
    rows = checked.rows
    values = rows[LABEL].map(_number) if len(rows) else pd.Series([], dtype=object)
    bad_mask = values.isna().to_numpy(bool) if len(rows) else []
    if len(rows) and bad_mask.any():
        raw_by_order = table.frame.set_index(ORDER)
        for i in bad_mask.nonzero()[0]:
            order = int(rows[ORDER].iloc[i])
            raw = {str(k): v for k, v in raw_by_order.loc[order].items() if k != SOURCE}
            detail = f"the target in column {cfg.label_column!r} is {rows[LABEL].iloc[i][:40]!r}, not a finite number"
            checked.bad.append(BadRow(rows[SOURCE].iloc[i], BadRowReason.INVALID_TARGET, detail, _plain(raw), order))
        checked.bad.sort(key=lambda b: b.order)
        rows, values = rows[~bad_mask].reset_index(drop=True), values[~bad_mask].reset_index(drop=True)
    rows[LABEL] = [repr(float(v)) for v in values]
    rows.insert(2, TARGET, pd.Series([float(v) for v in values], dtype="float64"))
    checked.rows = rows
    return checked


def _plain(raw: dict) -> dict:
    from tunesmith.data.schema import plain

    return {k: plain(v) for k, v in raw.items()}
