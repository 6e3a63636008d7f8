"""log_run: params, metrics, curves, report artifacts, and a model artifact without pickles."""

from __future__ import annotations

import json
import math

import pytest

from tunesmith.registry import RegistryError, log_run
from tunesmith.registry.runs import flatten, history_entries, metric_name


def _paths(client, run_id, path=None):
    out = []
    for info in client.list_artifacts(run_id, path):
        out.extend(_paths(client, run_id, info.path) if info.is_dir else [info.path])
    return out


def test_log_run_records_params_metrics_artifacts_and_model(store, cfg, model_dir, tmp_path):
    run_dir = model_dir.parent
    (run_dir / "metrics.json").write_text(json.dumps({"tuned": {"macro_f1": 0.9}}))
    (run_dir / "report.html").write_text("<html></html>")
    history = [
        {"loss": 0.9, "learning_rate": 5e-5, "epoch": 0.5, "step": 5},
        {"loss": 0.4, "learning_rate": 2e-5, "epoch": 1.0, "step": 10},
        {"eval_loss": 0.5, "eval_macro_f1": 0.85, "epoch": 1.0, "step": 10},
    ]
    run_id = log_run(
        cfg,
        run_dir=run_dir,
        params={"method.trainable_params": 1234},
        metrics={"macro_f1": 0.9, "uplift.macro_f1": 0.1, "ece": math.nan, "loss": math.inf, "note": "text"},
        artifacts=[run_dir / "metrics.json", run_dir / "report.html", run_dir / "missing.json"],
        model_dir=model_dir,
        tags={"method": "full", "lineage": {"a": 1}},
        log_history=history,
        store=store,
    )
    client = store.client
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run-1"
    assert client.get_experiment(run.info.experiment_id).name == "sentiment"
    params = run.data.params
    assert params["training.learning_rate"] == "5e-05" and params["name"] == "sentiment"
    assert params["method.trainable_params"] == "1234" and params["evaluation.top_k"] == "[2]"
    assert run.data.metrics["macro_f1"] == 0.9 and run.data.metrics["uplift.macro_f1"] == 0.1
    assert not {"ece", "loss", "note"} & set(run.data.metrics)  # non-finite and non-numeric are skipped
    assert run.data.tags["method"] == "full" and run.data.tags["lineage"] == '{"a": 1}'
    curve = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in sorted(curve, key=lambda m: m.step)] == [(5, 0.9), (10, 0.4)]
    assert [m.value for m in client.get_metric_history(run_id, "eval/macro_f1")] == [0.85]
    files = _paths(client, run_id)
    assert {"metrics.json", "report.html"} <= set(files)
    model_files = sorted(f for f in files if f.startswith("model/"))
    assert model_files == [
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer.json",
        "model/vocab.txt",
    ]


def test_a_model_dir_without_safetensors_is_refused(store, cfg, tmp_path):
    model = tmp_path / "run-2" / "model"
    model.mkdir(parents=True)
    (model / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(RegistryError, match="no .safetensors weights") as err:
        log_run(
            cfg,
            run_dir=model.parent,
            params={},
            metrics={},
            artifacts=[],
            model_dir=model,
            tags={},
            store=store,
        )
    assert "safe_serialization" in str(err.value)
    runs = store.client.search_runs([store.client.get_experiment_by_name("sentiment").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_names_and_values_fit_mlflow_limits():
    assert metric_name("per_class:pos/f1") == "per_class_pos/f1"
    assert metric_name("/a//../b") == "a/b"
    assert len(metric_name("x" * 400)) == 250
    flat = flatten({"a": {"b": "y" * 7000, "c": None, "d": True}})
    assert len(flat["a.b"]) == 6000 and flat["a.c"] == "null" and flat["a.d"] == "true"
    assert history_entries([{"loss": 1.0}, {"loss": 0.5}]) == [("train/loss", 1.0, 0), ("train/loss", 0.5, 1)]
