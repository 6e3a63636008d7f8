"""What the built-in families share: `family(__name__, ...)` builds a family from its package's conventional files,
with the usual hooks filled in for what it leaves out.

    TASK = register(family(__name__, kind="regression", summary=..., check_rows=..., routes=(SCORE,), ...))
"""

from __future__ import annotations

import math
from pathlib import Path

from tunesmith.config.base import MethodKind
from tunesmith.contracts import LABEL_LIVE, DistillHooks, Family, FeedbackHooks, MlflowModel, lazy
from tunesmith.data.checks import no_label_checks, redact_text_column
from tunesmith.data.load import Table, load_table
from tunesmith.data.report import label_distribution

ENCODER_METHODS = (MethodKind.FULL, MethodKind.LORA, MethodKind.FREEZE, MethodKind.HEAD)  # a base with a new head


def read_table(key: str, path: Path, cfg) -> Table:
    """csv / tsv / jsonl / parquet / a saved HF dataset, with data.format and data.max_line_bytes."""
    return load_table(key, path, cfg.data.format, max_line_bytes=cfg.data.max_line_bytes)


def no_labels(splits: dict, cfg, files: list) -> tuple[list[str], list[str]]:
    """Families whose rows carry no class label: an empty label list, nothing to warn about."""
    return [], []


def no_config(cfg) -> None:
    """A family with nothing to default or check beyond the generic rules."""


def family(package: str, **hooks) -> Family:
    """A `Family` for the package `package`, with the hooks its files provide by convention (like peft's fixed file
    roles): `train.train`, `evaluate.evaluate` and serve.py's `describe_model`, `recognizes`, `load_served` and
    `predict`, each imported on first use; and the shared hooks for what the family leaves out (csv/jsonl/parquet
    reading, no labels, the text column redacted for PII, no label checks, nothing to configure)."""
    defaults = {"configure": no_config, "read_table": read_table, "label_set": no_labels,
                "label_distribution": label_distribution, "redact": redact_text_column, "label_checks": no_label_checks,
                "train": lazy(f"{package}.train:train"), "evaluate": lazy(f"{package}.evaluate:evaluate")}
    serve = {name: lazy(f"{package}.serve:{name}") for name in ("describe_model", "recognizes", "load_served",
                                                                  "predict")}
    return Family(**{**defaults, **serve, **hooks})


def distill_hooks(module: str) -> DistillHooks:
    """The distillation comparison's hooks from `module` (its `scores`, `delta` and `load`), imported on first use."""
    return DistillHooks(scores=lazy(f"{module}:scores"), delta=lazy(f"{module}:delta"), load=lazy(f"{module}:load"))


# --- registered versions as MLflow Models (tunesmith.contracts.MlflowModel) -------------------------------------

TEXT_INPUT = ({"type": "string", "name": "text", "required": True},)
EXAMPLE_TEXTS = ["a film worth seeing twice", "the plot made no sense and the acting was flat"]


def row_value(rows: list[dict], i: int, column: str) -> str:
    """Row i's `column` as a non-empty string, else a ValueError naming the row and the column."""
    value = rows[i].get(column)
    if not isinstance(value, str) or not value.strip():
        shown = repr(value)[:60]
        raise ValueError(f"row {i}: column {column!r} must be a non-empty string (got {shown}); send a frame with a "
                         f"{column!r} column of texts")
    return value


def text_items(_served, rows: list[dict], _params: dict) -> list[str]:
    """The `text` column: the items of the text routes (/v1/classify, /v1/score, /v1/extract, /v1/embeddings)."""
    return [row_value(rows, i, "text") for i in range(len(rows))]


def text_mlflow(outputs: tuple[dict, ...], *, pipeline_task: str, flavor: str = "transformers") -> MlflowModel:
    """A family whose requests are texts: a `text` column in, one route result per row out."""
    return MlflowModel(inputs=TEXT_INPUT, outputs=outputs, example={"text": EXAMPLE_TEXTS}, items=text_items,
                       flavor=flavor, pipeline_task=pipeline_task)


# --- feedback on served predictions (tunesmith.contracts.FeedbackHooks) ----------------------------------------


def check_label(value, labels: list[str] | None, _logged=None) -> str:
    """One of the model's labels."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("give the true label as a string, one of the model's labels")
    if labels and value not in labels:
        raise ValueError(f"label {value!r} is not one of the model's labels ({', '.join(labels)})")
    return value


def check_number(value, what: str, *, minimum: float | None = None) -> float:
    """A finite number (at least `minimum`); booleans and numeric strings from a CSV cell included."""
    if isinstance(value, bool):
        value = float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number (got {str(value)[:40]!r})") from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise ValueError(f"{what} must be a finite number" + (f" >= {minimum:g}" if minimum is not None else ""))
    return number


LABEL_FEEDBACK = FeedbackHooks(shape="the true label, one of the model's labels", check=check_label, live=LABEL_LIVE,
                               live_metrics=(("accuracy", "higher"), ("macro_f1", "higher")))
