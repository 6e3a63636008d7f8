"""`tunesmith run` for regression on a tiny BERT: a non-numeric target quarantined, tuned vs ridge probe, gates,
registry, and the registered model served by transformers' text-classification pipeline as a number."""

from __future__ import annotations

import json

import pytest
from tests.integration.test_cli_run import tunesmith
from tests.toy import POSITIVE, make_reviews

pytestmark = pytest.mark.integration


def test_regression_run_registers_a_model_the_pipeline_serves(tmp_path, tiny_model_dir):
    from transformers import pipeline

    df = make_reviews(160, seed=4)
    df["stars"] = [str(10.0 + 4 * sum(w in POSITIVE for w in t.split()) + 8 * (lab == "pos"))
                   for t, lab in zip(df["text"], df["label"], strict=True)]
    df.loc[6, "stars"] = "lots"  # a non-numeric target: quarantined with its line
    df.drop(columns=["label"]).to_csv(tmp_path / "reviews.csv", index=False)
    cfg = {"name": "toy-stars", "task": "regression", "seed": 0,
           "data": {"path": "reviews.csv", "label_column": "stars"}, "model": {"base": tiny_model_dir, "max_length": 32},
           "training": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "early_stopping_patience": None},
           "evaluation": {"bootstrap": {"samples": 200}}, "gates": ["uplift.rmse < 0", "spearman >= 0.5"]}
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))
    out = tunesmith("run", "config.yaml", cwd=tmp_path).stdout
    assert "gate decision: PASSED" in out and "registered toy-stars version 1" in out and "rmse" in out

    run = next((tmp_path / ".tunesmith/runs/toy-stars").iterdir())
    quarantine = (run / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == 1 and "reviews.csv:8" in quarantine[0] and "invalid_target" in quarantine[0]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["flat"]["uplift.rmse"] < 0 and metrics["baseline_probe"]["method"].startswith("ridge")
    assert "Largest errors (tuned)" in (run / "report.html").read_text()
    pipe = pipeline("text-classification", model=str(run / "model"), function_to_apply="none", device="cpu")
    assert 5 < pipe("great wonderful film")[0]["score"] < 40  # a number in the target's unit
