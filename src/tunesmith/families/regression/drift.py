"""Drift tests of a served regression model: its inputs and the distribution of the values it predicts."""

from __future__ import annotations

from tunesmith.families.common import held_out_sample, ks_test, served_outputs, text_reference
from tunesmith.monitoring import drift


def reference(cfg, bundle, model_dir) -> dict:
    values = served_outputs(model_dir, held_out_sample(cfg, bundle, "text"))
    return {**text_reference(bundle.train["text"].astype(str).tolist()),
            "predicted_values": [round(float(v), 6) for v in values], "max_length": cfg.model.max_length}


def accepts(row: dict) -> bool:
    return isinstance(row["input"], str) and isinstance(row["output"], int | float)


def window(rows: list[dict], ref: dict, settings, context) -> dict:
    tests = drift.input_drift([r["input"] for r in rows], ref, settings, seed=context.cfg.seed)
    tests.update(ks_test("prediction_ks", ref["predicted_values"], [float(r["output"]) for r in rows], settings))
    return tests
