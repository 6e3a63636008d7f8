"""Helpers for the data-stage tests: write rows in any format and build a config around them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tunesmith.config import Config, config_from_dict


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    """Write `df` in the format named by the path's extension (.jsonl, .csv, .tsv, .csv.gz, .parquet)."""
    name = path.name
    if name.endswith(".jsonl"):
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    elif ".csv" in name:
        df.to_csv(path, index=False)
    elif name.endswith(".tsv"):
        df.to_csv(path, index=False, sep="\t")
    elif name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        raise ValueError(name)
    return path


def make_cfg(seed: int = 42, source: str | None = None, **data) -> Config:
    """A Config whose `data` section is `data` (paths may be Path objects)."""
    data = {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}
    return config_from_dict({"name": "t", "seed": seed, "data": data}, source=source)
