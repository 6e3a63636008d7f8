"""What the built-in families share: `family(__name__, ...)` builds a family from its package's conventional files,
with the usual hooks filled in for what it leaves out.

    TASK = register(family(__name__, kind="regression", summary=..., check_rows=..., routes=(SCORE,), ...))
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

from tunesmith.config.base import MethodKind
from tunesmith.contracts import (
    LABEL_LIVE,
    DatasetHooks,
    DistillHooks,
    Family,
    FeedbackHooks,
    FilterHooks,
    MlflowModel,
    lazy,
)
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
    """Row i's `column` as a non-empty string the HTTP routes would take too (no control character or lone
    surrogate, at most serving's default max_input_chars), else a ValueError naming the row and the column."""
    from tunesmith.serving.schemas import MAX_TEXT, check_text

    value = rows[i].get(column)
    if not isinstance(value, str) or not value.strip():
        shown = repr(value)[:60]
        raise ValueError(f"row {i}: column {column!r} must be a non-empty string (got {shown}); send a frame with a "
                         f"{column!r} column of texts")
    if len(value) > MAX_TEXT:
        raise ValueError(f"row {i}: column {column!r}: {len(value)} characters; the limit is {MAX_TEXT}")
    try:
        return check_text(value)
    except ValueError as exc:
        raise ValueError(f"row {i}: column {column!r}: {exc}") from None


def text_items(_served, rows: list[dict], _params: dict) -> list[str]:
    """The `text` column: the items of the text routes (/v1/classify, /v1/score, /v1/extract, /v1/embeddings)."""
    return [row_value(rows, i, "text") for i in range(len(rows))]


def text_mlflow(outputs: tuple[dict, ...], *, pipeline_task: str, flavor: str = "transformers") -> MlflowModel:
    """A family whose requests are texts: a `text` column in, one route result per row out."""
    return MlflowModel(inputs=TEXT_INPUT, outputs=outputs, example={"text": EXAMPLE_TEXTS}, items=text_items,
                       flavor=flavor, pipeline_task=pipeline_task)


# --- output filters (tunesmith.contracts.FilterHooks) -----------------------------------------------------------


def _label_abstain(result: dict, _floor: float | None = None) -> tuple[dict, dict]:
    """Below the confidence floor: the caller gets no label (and no label set), the log keeps the model's guess."""
    return ({**result, "label": None, **({"labels": None} if "labels" in result else {}), "abstained": True},
            {**result, "abstained": True})


def _label_set_confidence(result: dict) -> float | None:
    """A multi-label answer is as sure as its least sure label decision: min over labels of max(p, 1 - p)."""
    scores = result.get("scores") or {}
    return min((max(p, 1 - p) for p in scores.values()), default=None)


LABEL_FILTERS = FilterHooks(confidence=lambda r: r.get("score"), abstain=_label_abstain)
LABEL_SET_FILTERS = FilterHooks(confidence=_label_set_confidence, abstain=_label_abstain)


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


def text_label_row(logged, _output, value) -> dict:
    """A text family's training row: the logged text with its true label (a label, a label set, a value)."""
    if not isinstance(logged, str):
        raise ValueError("the logged input is not a text")
    return {"text": logged, "label": value}


LABEL_FEEDBACK = FeedbackHooks(shape="the true label, one of the model's labels", check=check_label, live=LABEL_LIVE,
                               live_metrics=(("accuracy", "higher"), ("macro_f1", "higher")), to_row=text_label_row)


# --- drift references and windows (tunesmith.contracts.DriftHooks) ----------------------------------------------


def text_reference(texts: list[str]) -> dict:
    """What the input-drift tests compare a window's texts with: word counts per text and the token distribution."""
    from collections import Counter

    from tunesmith.monitoring.reference import text_length, tokens

    counts = Counter(t for text in texts for t in tokens(text))
    return {"lengths": [text_length(t) for t in texts], "token_counts": dict(counts.most_common(5000)),
            "token_total": int(sum(counts.values())), "rows": {"train": len(texts)}}


def held_out_sample(cfg, bundle, column: str) -> list:
    """A seeded sample (monitoring.drift.reference_rows) of the eval + test rows' `column`."""
    import numpy as np
    import pandas as pd

    values = pd.concat([bundle.eval, bundle.test], ignore_index=True)[column].tolist()
    n = min(cfg.monitoring.drift.reference_rows, len(values))
    picked = sorted(np.random.default_rng(cfg.seed).choice(len(values), size=n, replace=False).tolist()) if n else []
    return [values[i] for i in picked]


@functools.lru_cache(maxsize=4)
def _served(model_dir: str):
    from tunesmith.serving.models import load_served

    return load_served(Path(model_dir), name="monitor", version=0)


def served_model(model_dir):
    """A model dir loaded as `tunesmith serve` loads it (the family's `load_served`), once per process: the drift
    reference and live quality (one monitor run asks per bootstrap sample) share it; the last few are kept."""
    return _served(str(Path(model_dir).resolve()))


def served_outputs(model_dir, items: list, chunk: int = 64) -> list:
    """What the tuned model answers for `items` as `tunesmith serve` would (and logs): the family's own predict."""
    served = served_model(model_dir)
    out: list = []
    for start in range(0, len(items), chunk):
        out += served.family.predict(served, items[start:start + chunk])
    return out


def ks_test(name: str, reference: list[float], current: list[float], settings) -> dict:
    """{name: KS test of the window's values against the reference's}, flagged at monitoring.drift.p_value."""
    import numpy as np

    from tunesmith.monitoring.drift import ks, make_test

    stat, p = ks(reference, current)
    return {name: make_test("ks", stat, p, p < settings.p_value, reference_mean=float(np.mean(reference)),
                            window_mean=float(np.mean(current)))}


# --- dataset versions for retraining (tunesmith.contracts.DatasetHooks) ------------------------------------------


def _value(v):
    """A bundle cell as plain JSON (numpy scalars and arrays from a parquet-backed frame included)."""
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


def text_dataset(bundle_label: str, *, classes: str | None, recent_gates: tuple[str, ...],
                 recent_eval=None) -> DatasetHooks:
    """A text family's versions: {"text", "label"} rows keyed by the text. `bundle_label` is the bundle column of the
    label ("label", "labels", "target"); `classes` "one" (a label) or "set" (a label list) or None (a value)."""
    from tunesmith.data.fingerprint import text_key

    def raw_rows(frame) -> list[dict]:
        return [{"text": str(t), "label": _value(v)} for t, v in zip(frame["text"], frame[bundle_label], strict=True)]

    def labels(row) -> tuple:
        if classes == "one":
            return (str(row["label"]),)
        return tuple(map(str, row["label"])) if classes == "set" else ()

    return DatasetHooks(raw_rows=raw_rows, key=lambda row: text_key(str(row["text"])), labels=labels,
                        data={"text_column": "text", "label_column": "label"}, recent_gates=recent_gates,
                        recent_eval=recent_eval)


def no_classes(_row) -> tuple:
    return ()


# --- training settings that fit the data (tunesmith.config.derived) ------------------------------------------


def head_training_defaults(*, steps_per_class: int = 0, lr_scale: float = 1.0, lr_why: str = ""):
    """A family's `training_defaults` hook for an encoder with a task head: the shared schedule and learning-rate
    rule, with the family's extra steps per class and learning-rate scale."""
    from tunesmith.config.derived import head_defaults

    return functools.partial(head_defaults, steps_per_class=steps_per_class, lr_scale=lr_scale, lr_why=lr_why)
