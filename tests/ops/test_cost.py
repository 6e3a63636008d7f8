"""Cost: prices turn measured usage into money (`cost:`), gates read the figures, and the server meters what each
version's answers cost (`tunesmith_cost_per_1k_inferences`). The run side (a run's CPU seconds, the per-1k probe
through the serving path, metrics.json, the report and the registry tag) is checked for every family in
tests/families/test_loop.py."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from tests.serving.serve_helpers import register, settings

from tunesmith.config import CostConfig, config_from_dict
from tunesmith.evaluation import gate
from tunesmith.evaluation.gates import unknown_gate_metrics
from tunesmith.ops.cost import RunUsage, cost_metrics, probe_rows
from tunesmith.serving.app import create_app


def test_prices_turn_cpu_and_gpu_seconds_into_money_and_unpriced_usage_stays_unpriced():
    prices = CostConfig(cpu_hour=0.036, gpu_hour={"H100": 4.0, "H100 NVL": 5.0})
    assert prices.money(3600) == pytest.approx(0.036)
    assert prices.money(1800, 900, "NVIDIA H100 80GB HBM3") == pytest.approx(0.018 + 1.0)
    assert prices.gpu_price("NVIDIA H100 NVL") == 5.0  # the longest matching type
    assert prices.money(10, 10, "NVIDIA L4") is None  # no price for that GPU: no cost, never 0
    assert CostConfig().money(10) is None and not CostConfig().priced
    with pytest.raises(ValidationError, match="cpu_hour"):
        CostConfig(cpu_hour=-1)
    with pytest.raises(ValidationError, match="negative"):
        CostConfig(gpu_hour={"A10G": -0.5})


def test_cost_gates_read_the_run_figures_and_fail_closed_without_prices():
    cfg = config_from_dict({"name": "m", "data": {"path": "x.csv"}, "cost": {"cpu_hour": 0.05},
                            "gates": ["cost.train <= 0.01", "cost.per_1k <= 0.0001"]})
    assert not unknown_gate_metrics(cfg.gates)
    assert unknown_gate_metrics(config_from_dict({"name": "m", "data": {"path": "x.csv"},
                                                  "gates": ["cost.per1k <= 1"]}).gates) == ["cost.per1k"]
    usage = RunUsage.start().stop()
    usage.cpu_seconds, usage.wall_seconds = 1440.0, 800.0  # 0.4 CPU-hours at 0.05
    flat = cost_metrics(cfg, usage, per_1k_core_seconds=36.0, weights_bytes=2 * 10**9)
    assert flat["cost.train"] == pytest.approx(0.02) and flat["cost.per_1k"] == pytest.approx(0.0005)
    assert "cost.storage_month" not in flat  # no storage price
    decision = gate(flat, cfg.gates, primary_metric="macro_f1")
    assert not decision.passed and [r.metric for r in decision.failed] == ["cost.train", "cost.per_1k"]
    assert "measured 0.02" in decision.failed[0].note
    unpriced = config_from_dict({"name": "m", "data": {"path": "x.csv"}, "gates": ["cost.train <= 100"]})
    decision = gate(cost_metrics(unpriced, usage), unpriced.gates, primary_metric="macro_f1")
    assert not decision.passed and "not measured" in decision.failed[0].note


def test_a_run_measures_its_own_cpu_time():
    usage = RunUsage.start()
    total = sum(i * i for i in range(2_000_000))  # some CPU work in this process
    measured = usage.stop()
    assert total > 0 and measured.cpu_seconds > 0.01 and measured.wall_seconds > 0 and measured.gpu_seconds == 0


def test_the_per_1k_probe_sends_what_a_caller_sends():
    import pandas as pd

    frame = pd.DataFrame({"messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]],
                          "text": ["x"]})
    rows = probe_rows(frame, ({"name": "messages"},), 10)
    assert rows == [{"messages": [{"role": "user", "content": "hi"}]}]
    with pytest.raises(ValueError, match="no query column"):
        probe_rows(frame, ({"name": "query"},), 10)


def _samples(text: str, name: str) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == name}


def test_the_server_meters_each_versions_busy_cores_and_prices_1k_answers(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "costly", classifier_dirs[0], champion=True)
    prices = CostConfig(cpu_hour=0.05, currency="EUR")
    app = create_app("costly", settings=settings(inference={"num_threads": 1}), store=store, prices=prices)
    with TestClient(app) as client:
        for text in ("a great film", "dull", "fine acting and a great cast"):
            assert client.post("/v1/classify", json={"input": [text, text]}).status_code == 200
        metrics = client.get("/metrics").text
    busy = _samples(metrics, "tunesmith_inference_core_seconds_total")
    [(labels, core_seconds)] = busy.items()
    assert dict(labels) == {"model": "costly", "version": "1", "device": "cpu"} and core_seconds > 0
    items = sum(_samples(metrics, "tunesmith_batch_size_sum").values())
    assert items == 6
    [(labels, per_1k)] = _samples(metrics, "tunesmith_cost_per_1k_inferences").items()
    assert dict(labels)["currency"] == "EUR"
    assert per_1k == pytest.approx(core_seconds / 3600 * 0.05 / items * 1000)
    unpriced = create_app("costly", settings=settings(), store=store)
    with TestClient(unpriced) as client:
        client.post("/v1/classify", json={"input": "a great film"})
        metrics = client.get("/metrics").text
    assert _samples(metrics, "tunesmith_inference_core_seconds_total") and \
        not _samples(metrics, "tunesmith_cost_per_1k_inferences")


def test_the_model_card_states_the_config_escaped_and_what_was_not_measured():
    from types import SimpleNamespace

    from tunesmith.evaluation.card import model_card

    cfg = config_from_dict({"name": "m", "data": {"path": "x.csv"}, "model_card": {
        "intended_use": "routing <script>alert(1)</script> tickets", "license": "apache-2.0", "language": ["en"]}})
    report = SimpleNamespace(tuned={"macro_f1": 0.8, "accuracy": 0.85}, baseline={"macro_f1": 0.7},
                             uplift={"macro_f1": {"delta": 0.1, "ci_low": 0.05, "ci_high": 0.15}}, champion=None,
                             bootstrap={"confidence": 0.95, "samples": 1000}, notes=["a note"])
    decision = SimpleNamespace(passed=True, summary="2 of 2 gate rules passed")
    text = model_card(cfg, report=report, data={"rows_read": 10, "split_sizes": {"test": 2}, "checks": {}},
                      decision=decision, lineage={"data_fingerprint": "abc"}, cost={"cost.cpu_seconds": 12.0})
    assert text.startswith("---\nlicense: apache-2.0\nlanguage:\n- en\n")
    assert "<script>" not in text and "&lt;script>alert(1)&lt;/script>" in text  # no raw HTML tag survives
    assert "| macro_f1 | 0.8000 | 0.7000 | +0.1000 [+0.0500, +0.1500] |" in text
    assert "Not measured in this run: safety suites" in text and "12 CPU s" in text
