"""The closed loop, simulated for every family that takes feedback: a champion serves in-distribution traffic and nothing fires; the traffic
shifts and the users' feedback comes back in the family's shape; `monitor` declares drift and the live-quality SLO
breached; `monitor --act` retrains, and the challenger passes its gates and beats the champion on the recent traffic;
acting again on the same evidence does nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from tests.families.loop_streams import LOOPS, Loop

from tunesmith import families
from tunesmith.config import config_from_dict
from tunesmith.contracts import LABEL_LIVE
from tunesmith.monitoring.monitor import monitor
from tunesmith.pipeline import run
from tunesmith.registry import get_version, model_dir_for, open_store, promote
from tunesmith.retrain import retrain
from tunesmith.retrain.run import RetrainError, recent_summary
from tunesmith.retrain.triggers import act, pause, resume
from tunesmith.serving import prediction_log_for
from tunesmith.serving.app import create_app


def _config(loop: Loop, tmp_path, base: str) -> dict:
    labels_path = families.get(loop.kind).feedback.live == LABEL_LIVE
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in loop.train_rows(160, 1)))
    raw = {
        "name": f"loop-{loop.kind}", "task": loop.kind, "seed": 0,
        "output_dir": str(tmp_path / ".tunesmith/runs"),
        "data": {"path": str(train), "split": {"eval": 0.15, "test": 0.2},
                 "checks": {"label_issues": {"enabled": False}, "pii": {"presidio": "off"}}},
        "model": {"base": base, "max_length": 32 if loop.base == "bert" else 64},
        "method": {"kind": "full"},
        "training": {"epochs": 8, "batch_size": 16, "learning_rate": 5e-3, "early_stopping_patience": None},
        "evaluation": {"bootstrap": {"samples": 100}},
        "gates": ["cost.per_1k < 1"],  # what 1,000 answers cost, measured through the serving path
        "cost": {"cpu_hour": 0.05, "storage_gb_month": 0.02, "currency": "EUR"},
        "registry": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        "serving": {"max_wait_ms": 1, "poll_interval_s": 0.2,
                    "predictions": {"url": f"sqlite:///{tmp_path}/predictions.db", "redact_pii": False}},
        "monitoring": {"report_dir": str(tmp_path / ".tunesmith/monitor"),
                       "drift": {"permutations": 100, "reference_rows": 60, "max_rows": 60},
                       # a classifier's objectives are slo.accuracy / macro_f1, the other families' slo.targets
                       "slo": {**({"accuracy": 0.5, **loop.slo} if labels_path else {"targets": loop.slo}),
                               "min_labels": 20},
                       "triggers": {"new_labels": 1000, "min_new_labels": 20}},
        "retrain": {"rehearsal": 0.5, "recent_holdout": 0.3, "min_recent_rows": 10,
                    "datasets_dir": str(tmp_path / ".tunesmith/datasets")},
    }
    for key, value in loop.extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    if loop.suite:
        (tmp_path / "suite.yaml").write_text(yaml.safe_dump(loop.suite))
        raw["evaluation"]["regression"] = str(tmp_path / "suite.yaml")
    return raw


def _serve(client: TestClient, loop: Loop, items) -> int:
    """Each item as its own request (as users call it), and the feedback its user sends on the answer."""
    sent = 0
    for item in items:
        answer = client.post(loop.route, json=item.request)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rid = body.get("id") or body["request_id"]
        for index, value in loop.feedback(body, item.truth):
            stored = client.post("/v1/feedback", json={"request_id": rid, "index": index, "value": value,
                                                        "labeled_by": "simulator"})
            assert stored.status_code == 200, stored.text
            sent += 1
    return sent


def _worse(value: float, target: float, better: str) -> bool:
    return value < target if better == "higher" else value > target


@pytest.mark.parametrize("kind", list(LOOPS))
def test_shifted_traffic_with_feedback_drifts_breaches_the_slo_and_a_gated_challenger_wins(kind, tmp_path, monkeypatch,
                                                                                           loop_bert,
                                                                                           tiny_chat_model_dir):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    loop = LOOPS[kind]
    cfg = config_from_dict(_config(loop, tmp_path, loop_bert if loop.base == "bert" else tiny_chat_model_dir))
    first = run(cfg)
    assert first.passed and first.registered_version.version == 1, first.reasons
    # the run's cost: its CPU seconds priced, 1,000 answers of the tuned model as served, stored weights a month
    cost = json.loads((first.run_dir / "metrics.json").read_text())["cost"]
    assert cost["cpu_seconds"] > 0 and cost["train"] == pytest.approx(cost["cpu_seconds"] / 3600 * 0.05, rel=1e-3)
    assert cost["per_1k"] == pytest.approx(cost["per_1k_core_seconds"] / 3600 * 0.05) and 0 < cost["per_1k"] < 1, cost
    assert cost["storage_month"] > 0 and cost["prices"]["cpu_hour"] == 0.05 and cost["currency"] == "EUR"
    assert "Prices assumed (EUR): cpu_hour 0.05" in (first.run_dir / "report.html").read_text()
    assert json.loads(first.registered_version.tags["cost"])["per_1k"] == cost["per_1k"]
    version_dir = model_dir_for(cfg.name, 1, store=open_store(cfg.registry))
    runbook = (version_dir / "RUNBOOK.md").read_text()
    assert runbook.startswith(f"# Runbook: {cfg.name}") and f"tunesmith models rollback {cfg.name}" in runbook
    # the model card: Hugging Face's layout (metadata, then sections), every tuned test metric in the model-index
    _, meta, card = (version_dir / "README.md").read_text().split("---\n", 2)
    meta = yaml.safe_load(meta)
    assert meta["base_model"] == cfg.model.base and meta["pipeline_tag"] == families.get(kind).mlflow.pipeline_task
    scored = {m["type"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert loop.metric in scored and "## Evaluation" in card and "Not measured in this run" in card
    if kind == "classification":  # a family that reports slices has them in its card too
        assert "### Slice: text_length" in card
    store = open_store(cfg.registry)
    promote(cfg.name, store=store)
    [(slo_metric, target)] = loop.slo.items()
    hooks = families.get(kind).feedback
    better = "higher" if hooks.live == LABEL_LIVE else dict(hooks.live_metrics)[slo_metric]
    breached = "live_f1_below_slo" if hooks.live == LABEL_LIVE else "live_quality_below_slo"  # the trigger that fires
    with pytest.raises(RetrainError, match=f"no new labels for {cfg.name} since the config's data"):
        retrain(cfg, store=store)  # nothing labeled yet: nothing to retrain on, and no empty dataset version
    assert not any(Path(cfg.retrain.datasets_dir).glob("*/v*"))

    app = create_app(cfg.name, settings=cfg.serving, store=store, prediction_log=prediction_log_for(cfg.serving))
    with TestClient(app) as client:
        _serve(client, loop, loop.traffic(40, 2, False))
        before = monitor(cfg, window="40", store=store)
        live = before["live"]["versions"][1]
        assert not before["drift"]["detected"], before["drift"]
        assert live["status"] == "ok" and not _worse(live[slo_metric], target, better), live
        assert act(cfg, before, store=store)["action"] == "none"
        _serve(client, loop, loop.traffic(80, 3, True))

    after = monitor(cfg, window="80", store=store)
    if loop.suite:  # the regression suite ran against the served champion when the first monitor did, not again
        checks = after["live"]["versions"][1]["checks"]
        assert not checks["ran_now"] and checks["at"] == before["live"]["versions"][1]["checks"]["at"], checks
        assert "battery-answer" in checks["failed"] and after["live"]["versions"][1]["regression_pass_rate"] < 1
    assert after["drift"]["detected"], json.dumps(after["drift"], default=str)[:3000]
    live = after["live"]["versions"][1]
    assert live["status"] == "breach" and _worse(live[slo_metric], target, better), live
    html = Path(after["files"]["html"]).read_text()
    plots = 1 + ("label_psi" in after["drift"]["tests"])  # live quality, and the predicted labels where there are
    assert "DRIFT" in html and html.count("data:image/png;base64,") == plots
    prom = Path(after["files"]["prometheus"]).read_text()
    gauge = "tunesmith_error_budget_burn_rate" if hooks.live == LABEL_LIVE else "tunesmith_live_quality"
    assert f'tunesmith_drift_detected{{model="{cfg.name}"}} 1.0' in prom and gauge in prom

    pause(cfg, reason="holiday freeze", by="sre")  # an operator's pause: what fires is reported, nothing retrains
    paused = act(cfg, after, store=store)
    assert paused["action"] == "paused" and {t["name"] for t in paused["fired"]} == {"drift", breached}
    assert "holiday freeze" in paused["note"] and resume(cfg)["by"] == "sre" and resume(cfg) is None
    result = act(cfg, after, store=store)
    assert {t["name"] for t in result["fired"]} == {"drift", breached}, result
    assert result["action"] == "retrained", result
    retrained = result["retrain"]
    assert retrained["passed"], "\n".join(retrained["reasons"])
    recent = retrained["recent"]
    challenger, champion = recent["challenger"][loop.metric], recent["champion"][loop.metric]
    assert recent["passed"] and _worse(champion, challenger, loop.better), recent  # strictly better on recent traffic
    line = recent_summary(recent, kind)  # what `monitor --act` prints
    assert f"{loop.metric} challenger {challenger:.3f} vs champion {champion:.3f}" in line and "95% CI [" in line, line
    # The registry holds the trail: who the challenger came from, on which data, why it was trained.
    version = get_version(cfg.name, retrained["registered_version"], store=store)
    tags = version.tags
    assert "challenger" in version.aliases and tags["tunesmith.parent_version"] == "1"
    assert tags["tunesmith.dataset_version"] == "1" and set(json.loads(tags["tunesmith.label_sources"])) == {"feedback"}
    assert "drift" in tags["tunesmith.trigger"] and tags["tunesmith.recent_gate"] == "passed"
    assert tags["gate_decision"] == "passed" and tags["data_fingerprint"]
    manifest = json.loads((Path(retrained["dataset_dir"]) / "manifest.json").read_text())
    assert manifest["family"] == kind and manifest["rows"]["recent"] >= recent["rows"] > 0
    assert 0 < manifest["train_from_parent"] < manifest["parent_train_rows"]  # rehearsal: a share of the old rows
    # trained from the champion's weights, but "uplift" still means better than the base (a probe on the base's
    # features), not than a probe on the champion's, which the champion's good features would make unbeatable
    model = yaml.safe_load((Path(retrained["run_dir"]) / "config.yaml").read_text())["model"]
    assert model["base"] == cfg.model.base and model["init_from"] == str(model_dir_for(cfg.name, "champion",
                                                                                      store=store))

    again = act(cfg, after, store=store)
    assert again["action"] == "none" and {s["why"] for s in again["skipped"]} == {"already acted on"}
