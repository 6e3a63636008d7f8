"""`tunesmith init DATA_FILE`: guess the text and label columns and write a commented starter config.

The file is read by the data stage's own loader and row checks, so the labels written into the config are
exactly the labels `tunesmith validate` will see (a CSV column of 0/1 with a blank cell gives '0', '1').
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from tunesmith.config import NAME_RE, DataConfig, config_from_dict
from tunesmith.config.derived import data_stats, describe, generic_defaults
from tunesmith.data import DataError
from tunesmith.data.load import Table, load_table
from tunesmith.data.schema import LABEL, ORDER, SOURCE, check_rows, label_strings
from tunesmith.io import atomic_write_text

LABEL_NAMES = ("label", "labels", "category", "class", "intent", "target", "y", "sentiment", "tag")
TEXT_NAMES = ("text", "sentence", "review", "content", "body", "message", "query", "question", "document")
SAMPLE_ROWS = 5000  # rows looked at to guess the columns; the labels come from every row
TRAIN_SHARE = 0.8  # the template's split: {eval: 0.1, test: 0.1}


class StarterError(ValueError):
    """The data file cannot be read, or no text/label column could be found."""


@dataclass
class Guess:
    text_column: str
    label_column: str
    labels: list[str]
    rows_sampled: int
    stats: object = None  # tunesmith.config.derived.DataStats of the rows the data stage keeps (train share)


def read_table(path: Path) -> Table:
    """The file as the data stage reads it for `data.path` (format by extension, bad lines set aside)."""
    if not path.exists():
        raise StarterError(f"{path}: file not found")
    try:
        return load_table("data.path", path)
    except DataError as exc:
        raise StarterError(str(exc)) from None


def guess_columns(table: Table) -> Guess:
    """The text column (by name, else the longest strings) and the label column (by name, else the fewest values).

    The labels are those of the rows the data stage would keep with these two columns.
    """
    df = table.frame.drop(columns=[SOURCE, ORDER]).head(SAMPLE_ROWS)
    columns = ", ".join(map(str, df.columns))
    text = _guess_text(df)
    if text is None:
        raise StarterError(f"{table.path}: no text column found (columns: {columns})")
    label = _guess_label(df, text)
    if label is None:
        raise StarterError(
            f"{table.path}: no label column found (a column with 2 or more repeated values); columns: "
            f"{columns}; write the config by hand with data.label_column"
        )
    cfg = DataConfig(path=str(table.path), text_column=str(text), label_column=str(label))
    rows = check_rows(table, cfg).rows
    labels = sorted(rows[LABEL].unique().tolist())
    train = rows.sample(frac=TRAIN_SHARE, random_state=42) if len(rows) else rows  # the template's split
    return Guess(str(text), str(label), labels, len(df), data_stats(train, label_column=LABEL))


def _guess_text(df: pd.DataFrame) -> object | None:
    strings = [c for c in df.columns if df[c].dropna().map(lambda v: isinstance(v, str)).mean() > 0.9]
    if not strings:
        return None
    by_name = [c for c in strings if str(c).lower() in TEXT_NAMES]
    return by_name[0] if by_name else max(strings, key=lambda c: df[c].dropna().str.len().mean())


def _guess_label(df: pd.DataFrame, text: object) -> object | None:
    def values(c: object) -> int:  # distinct labels as the data stage reads them; 0 when some cannot be labels
        label, invalid = label_strings(df[c])
        return 0 if invalid.any() else label.nunique(dropna=True)

    counts = {c: values(c) for c in df.columns if c != text}
    candidates = [c for c, n in counts.items() if 2 <= n <= max(2, len(df) // 5)]
    if not candidates:
        return None
    named = [c for c in candidates if str(c).lower() in LABEL_NAMES]
    return named[0] if named else min(candidates, key=lambda c: counts[c])


TEMPLATE = """\
# tunesmith config, written by `tunesmith init {data}`. `tunesmith schema` documents every key;
# `tunesmith validate {out} --config-only` prints this file resolved. Override any key with --set key.path=value.
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
  metric: macro_f1            # early stopping and best checkpoint
  # `tunesmith run` derives epochs, batch size, learning rate and warmup from the training rows; for this file
  # (about {train_rows} training rows, {classes} classes, 95% of texts <= {p95_words:.0f} words) that gives:
{derived}
  # Uncomment a line to pin the value. `auto: {{budget_minutes: 10}}` searches around these on the eval split first.

gates:                        # every rule must pass to register a version
  - macro_f1 >= 0.70
  - uplift.macro_f1 >= 0.0    # better than a linear probe on the frozen base model
  - vs_champion.macro_f1 >= -0.01
"""


def write_starter_config(data: Path, output: Path, *, name: str | None = None) -> Guess:
    """Guess the columns of `data` and write a starter config to `output` (the data path relative to it)."""
    guess = guess_columns(read_table(data))
    try:
        data_rel = Path(data).resolve().relative_to(output.resolve().parent)
    except ValueError:
        data_rel = Path(data).resolve()
    name = name or re.sub(r"[^\w.-]", "-", data.name.split(".")[0]).lstrip("_.-") or "model"
    if not NAME_RE.fullmatch(name):
        raise StarterError(f"--name {name!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit")
    atomic_write_text(output, TEMPLATE.format(
        data=data, out=output, name=_yaml_str(name), data_rel=_yaml_str(str(data_rel)), text=_yaml_str(guess.text_column),
        label=_yaml_str(guess.label_column), labels=", ".join(_yaml_str(x) for x in guess.labels),
        train_rows=guess.stats.rows, classes=guess.stats.classes, p95_words=guess.stats.p95_words,
        derived="\n".join(f"  # {line}" for line in derived_lines(guess)),
    ))
    return guess


def derived_lines(guess: Guess) -> list[str]:
    """`key: value   # why` for each training key the classification family's rule derives for the guessed rows."""
    from tunesmith.families import get as family

    task = family("classification")
    cfg = config_from_dict({"name": "starter", "data": {"path": "data.csv", "split": {"eval": 0.1, "test": 0.1}},
                            "method": {"kind": "full"}})
    derived = (task.training_defaults or generic_defaults)(guess.stats, cfg)
    record = {k: {"value": v, "source": "data", "why": derived.why[k]} for k, v in derived.values.items()}
    return [f"{k}: {v['value']:g}".ljust(22) + f"# {line.split(': ', 1)[1].removesuffix(')')}"
            for (k, v), line in zip(record.items(), describe(record), strict=True)]


def _yaml_str(s: str) -> str:
    """`s` as a YAML scalar that reads back as the string `s`: plain when safe, else double-quoted."""
    plain = re.fullmatch(r"[\w./-]+", s) and not s.startswith(("-", ".")) and yaml.safe_load(s) == s
    return s if plain else json.dumps(s, ensure_ascii=False)
