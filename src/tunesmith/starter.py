"""`tunesmith init DATA_FILE`: guess the text and label columns and write a commented starter config."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tunesmith.io import atomic_write_text

LABEL_NAMES = ("label", "labels", "category", "class", "intent", "target", "y", "sentiment", "tag")
TEXT_NAMES = ("text", "sentence", "review", "content", "body", "message", "query", "question", "document")
SAMPLE_ROWS = 5000


class StarterError(ValueError):
    """The data file cannot be read, or no text/label column could be found."""


@dataclass
class Guess:
    text_column: str
    label_column: str
    labels: list[str]
    rows_sampled: int


def _read_sample(path: Path) -> pd.DataFrame:
    name = path.name.lower()
    try:
        if name.endswith((".jsonl", ".json")):
            return pd.read_json(path, lines=True, nrows=SAMPLE_ROWS)
        if name.endswith(".parquet"):
            return pd.read_parquet(path).head(SAMPLE_ROWS)
        if re.search(r"\.(csv|tsv)(\.(bz2|gz|xz|zip))?$", name):
            return pd.read_csv(path, nrows=SAMPLE_ROWS, sep="\t" if ".tsv" in name else ",")
    except (ValueError, OSError) as exc:
        raise StarterError(f"{path}: cannot read it ({exc}); check the format") from None
    raise StarterError(f"{path}: unknown file type; use .csv, .tsv, .jsonl or .parquet")


def guess_columns(df: pd.DataFrame, path: Path) -> Guess:
    strings = [c for c in df.columns if df[c].dropna().map(lambda v: isinstance(v, str)).mean() > 0.9]
    if not strings:
        raise StarterError(f"{path}: no text column found (columns: {', '.join(map(str, df.columns))})")
    by_name = [c for c in strings if str(c).lower() in TEXT_NAMES]
    text = by_name[0] if by_name else max(strings, key=lambda c: df[c].dropna().str.len().mean())
    candidates = [c for c in df.columns if c != text and 2 <= df[c].nunique(dropna=True) <= max(2, len(df) // 5)]
    named = [c for c in candidates if str(c).lower() in LABEL_NAMES]
    if not candidates:
        raise StarterError(
            f"{path}: no label column found (a column with 2 or more repeated values); columns: "
            f"{', '.join(map(str, df.columns))}; write the config by hand with data.label_column"
        )
    label = named[0] if named else min(candidates, key=lambda c: df[c].nunique())
    labels = sorted(map(str, df[label].dropna().unique()))
    return Guess(str(text), str(label), labels, len(df))


TEMPLATE = """\
# tunesmith config, written by `tunesmith init {data}`; every key is documented by
# `tunesmith validate {out} --config-only`. Override any key with --set key.path=value.
name: {name}
task: classification
seed: 42

data:
  path: {data_rel}
  text_column: {text}
  label_column: {label}
  labels: [{labels}]
  bad_rows: quarantine        # or fail: stop at the first bad row with file:line
  split: {{eval: 0.1, test: 0.1}}

model:
  base: builtin:minilm        # any HF model id or local dir
  max_length: 128

method:
  kind: full                  # full | lora | freeze | head

training:
  epochs: 3
  batch_size: 32
  learning_rate: 5.0e-5
  metric: macro_f1            # early stopping and best checkpoint

gates:                        # every rule must pass to register a version
  - macro_f1 >= 0.70
  - uplift.macro_f1 >= 0.0    # better than a linear probe on the frozen base model
  - vs_champion.macro_f1 >= -0.01
"""


def write_starter_config(data: Path, output: Path, *, name: str | None = None) -> Guess:
    if not data.is_file():
        raise StarterError(f"{data}: file not found")
    guess = guess_columns(_read_sample(data), data)
    try:
        data_rel = Path(data).resolve().relative_to(output.resolve().parent)
    except ValueError:
        data_rel = Path(data).resolve()
    stem = re.sub(r"[^\w.-]", "-", data.name.split(".")[0]) or "model"
    atomic_write_text(output, TEMPLATE.format(
        data=data, out=output, name=name or stem, data_rel=data_rel, text=guess.text_column,
        label=guess.label_column, labels=", ".join(_yaml_str(x) for x in guess.labels),
    ))
    return guess


def _yaml_str(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z_][\w-]*", s) and s.lower() not in {"yes", "no", "true", "false", "null", "on", "off"} else repr(s)
