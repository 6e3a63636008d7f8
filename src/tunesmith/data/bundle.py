"""DataBundle: what the data stage hands to training and evaluation (see docs/CONTRACTS.md)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tunesmith.data.report import DataReport


@dataclass
class DataBundle:
    """Train/eval/test frames with columns text, label, _source and the slice columns."""

    train: pd.DataFrame
    eval: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]  # class id = index in this list (data.labels order, else sorted)
    fingerprint: str  # sha256 hex of the normalized rows and the schema
    report: DataReport

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def split(self, name: str) -> pd.DataFrame:
        """The frame of split `name` ("train", "eval" or "test")."""
        if name not in ("train", "eval", "test"):
            raise KeyError(f"no split {name!r}; use train, eval or test")
        return getattr(self, name)
