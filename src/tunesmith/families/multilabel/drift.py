"""Drift tests of a served multi-label model: its inputs, how often it predicts each label, its top confidence."""

from __future__ import annotations

from collections import Counter

from tunesmith.families.common import held_out_sample, served_outputs, text_reference
from tunesmith.monitoring import drift


def reference(cfg, bundle, model_dir) -> dict:
    outputs = served_outputs(model_dir, held_out_sample(cfg, bundle, "text"))
    labels = list(outputs[0]["scores"]) if outputs else []
    counts = Counter(label for out in outputs for label in out["labels"])
    return {**text_reference(bundle.train["text"].astype(str).tolist()), "labels": labels,
            "predicted_counts": {label: counts[label] for label in labels},
            "confidences": [round(float(out["score"]), 5) for out in outputs], "max_length": cfg.model.max_length}


def accepts(row: dict) -> bool:
    return isinstance(row["input"], str) and isinstance(row["output"], dict) and "labels" in row["output"]


def window(rows: list[dict], ref: dict, settings, context) -> dict:
    """Input drift, then label PSI / chi-square over every predicted label and KS on the top label's score."""
    tests = drift.input_drift([r["input"] for r in rows], ref, settings, seed=context.cfg.seed)
    tests.update(drift.prediction_drift([label for r in rows for label in r["output"]["labels"]],
                                        [float(r["output"]["score"]) for r in rows], ref, settings))
    return tests
