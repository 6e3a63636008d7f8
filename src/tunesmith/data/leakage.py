"""The same text in two splits (leakage) and the same text with different labels in the training data.

Texts compare by `fingerprint.text_key` (NFC, whitespace collapsed, casefolded). Nothing is dropped here:
the counts go into the DataReport and each finding becomes a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations

import pandas as pd

from tunesmith.data.schema import LABEL, ORDER, SOURCE

TEXT_DIGEST = "_text_digest"  # internal column: sha256 hex of the row's text_key
EXAMPLES = 3  # example rows kept per finding


@dataclass
class Leakage:
    """`overlap["train/test"]`: test rows whose text also occurs in train (likewise for every pair of splits)."""

    overlap: dict[str, int] = field(default_factory=dict)
    overlap_examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # pair -> [{split: source}]
    conflicting_duplicates: int = 0  # texts that occur in the training data with more than one label
    warnings: list[str] = field(default_factory=list)


def find_leakage(
    splits: Mapping[str, pd.DataFrame], where: Mapping[str, str], training: pd.DataFrame, training_name: str
) -> Leakage:
    """Overlaps between every pair of `splits`, and texts with conflicting labels in the training data.

    Args:
        splits: frames with LABEL, ORDER, SOURCE and TEXT_DIGEST columns, in the order train, eval, test.
        where: per split, how to name it in a warning (e.g. "data.test (test.jsonl)").
        training: the rows of data.path or data.train in use: train and the splits carved from it (a text
            and its copies always land in one of them, so a conflict is counted wherever it landed).
        training_name: how to name those rows in a warning.
    """
    found = Leakage()
    for first, second in combinations(splits, 2):
        pair = f"{first}/{second}"
        a, b = splits[first], splits[second]
        shared = b[b[TEXT_DIGEST].isin(a[TEXT_DIGEST])].sort_values(ORDER, kind="stable")
        found.overlap[pair] = len(shared)
        if shared.empty:
            continue
        seen_at = a.sort_values(ORDER, kind="stable").drop_duplicates(TEXT_DIGEST).set_index(TEXT_DIGEST)[SOURCE]
        head = shared.iloc[:EXAMPLES]
        examples = [{first: seen_at[d], second: s} for d, s in zip(head[TEXT_DIGEST], head[SOURCE], strict=True)]
        found.overlap_examples[pair] = examples
        shown = ", ".join(f"{e[second]} = {e[first]}" for e in examples)
        why = "the model trained on them" if first == "train" else "the best checkpoint was chosen on them"
        found.warnings.append(
            f"{len(shared)} {second} rows of {where[second]} repeat a text of {where[first]} (e.g. {shown}); "
            f"such rows inflate {second} metrics ({why}): remove them from one of the files"
        )
    found.conflicting_duplicates, warning = _conflicts(training, training_name)
    found.warnings += [warning] if warning else []
    return found


def _conflicts(train: pd.DataFrame, where: str) -> tuple[int, str | None]:
    train = train[[TEXT_DIGEST, LABEL, SOURCE, ORDER]].sort_values(ORDER, kind="stable")  # examples in file order
    labels_per_text = train.groupby(TEXT_DIGEST, sort=False)[LABEL].nunique()
    conflicting = labels_per_text[labels_per_text > 1].index
    if conflicting.empty:
        return 0, None
    rows = train[train[TEXT_DIGEST].isin(set(conflicting[:EXAMPLES]))].drop_duplicates([TEXT_DIGEST, LABEL])
    shown = "; ".join(
        " vs ".join(f"{label!r} at {source}" for label, source in zip(g[LABEL], g[SOURCE], strict=True))
        for _, g in rows.groupby(TEXT_DIGEST, sort=False)
    )
    return len(conflicting), (
        f"{len(conflicting)} texts occur more than once in {where} with different labels (e.g. {shown}); "
        "the model gets contradicting targets for them: fix or drop the wrong copies"
    )
