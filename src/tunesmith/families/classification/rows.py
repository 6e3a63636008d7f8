"""Single-label rows: a text and one label (read and checked by `tunesmith.data.schema`), and the label list."""

from __future__ import annotations

import pandas as pd

from tunesmith.data.errors import DataError, quoted
from tunesmith.data.schema import LABEL, check_columns, check_rows


def check_label_rows(table, cfg):
    """The label and text columns exist; every row is usable, bad (with file:line and why) or excluded."""
    check_columns(table, cfg.data)
    return check_rows(table, cfg.data)


def label_set(splits: dict[str, pd.DataFrame], cfg, files: list) -> tuple[list[str], list[str]]:
    """data.labels, else the sorted train labels; train needs two of them and eval/test no others."""
    d = cfg.data
    _require_two_labels(splits["train"], files, d)
    labels = list(d.labels) if d.labels else sorted(splits["train"][LABEL].unique().tolist())
    return labels, _check_unseen_labels(splits, labels, {f.name: f.table.key for f in files})


def _require_two_labels(train: pd.DataFrame, files: list, d) -> None:
    found = sorted(train[LABEL].unique())
    if len(found) >= 2:
        return
    excluded = sum(sum(f.checked.excluded.values()) for f in files)
    quarantined = sum(len(f.checked.bad) for f in files)
    aside = f" ({excluded} rows were excluded by data.drop_labels, {quarantined} quarantined)" if excluded or quarantined else ""
    raise DataError(
        "data.label_column",
        f"train has {'only one label, ' + repr(found[0]) if found else 'no labels'} in column {d.label_column!r} "
        f"({len(train)} rows); a classifier needs at least 2",
        f"check that data.label_column names the label column, and that data.labels / data.drop_labels "
        f"do not leave out the other labels{aside}",
    )


def _check_unseen_labels(splits: dict[str, pd.DataFrame], labels: list[str], keys: dict[str, str]) -> list[str]:
    seen = set(splits["train"][LABEL].unique())
    for name in ("eval", "test"):
        unseen = sorted(set(splits[name][LABEL].unique()) - seen)
        if unseen:
            where = keys.get(name, "data.split")
            raise DataError(
                where, f"labels {quoted(unseen)} occur in {name} but never in train, so the model cannot learn them",
                "add training rows with these labels, or leave them out with data.drop_labels",
            )
    missing = [label for label in labels if label not in seen]
    return [f"data.labels {quoted(missing)} have no training rows; the model will never predict them"] if missing else []
