"""Closing the loop end to end: serve a tiny model, shift the traffic halfway, feed labels back, and watch
`monitor --act` detect the drift, retrain, gate and register a challenger that wins on the recent traffic."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.monitoring.loop_data import build_base_model, loop_config, movie_reviews, product_reviews

from tunesmith.config import config_from_dict
from tunesmith.monitoring.monitor import monitor
from tunesmith.registry import get_version, model_dir_for, open_store, promote
from tunesmith.retrain import retrain
from tunesmith.retrain.run import RetrainError
from tunesmith.retrain.triggers import act
from tunesmith.serving import prediction_log_for
from tunesmith.serving.app import create_app


def _serve(client: TestClient, frame: pd.DataFrame) -> list[str]:
    """Classify each text (one request each, as users call it) and send its true label back."""
    ids = []
    for text, label in zip(frame["text"], frame["label"], strict=True):
        answer = client.post("/v1/classify", json={"input": text})
        assert answer.status_code == 200, answer.text
        rid = answer.json()["request_id"]
        stored = client.post("/v1/feedback", json={"request_id": rid, "label": label, "labeled_by": "simulator"})
        assert stored.status_code == 200 and stored.json()["stored"] is True, stored.text
        ids.append(rid)
    return ids


@pytest.fixture()
def loop(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    base = build_base_model(tmp_path / "base")
    cfg = config_from_dict(loop_config(tmp_path, base))
    from tunesmith.pipeline import run

    first = run(cfg)
    assert first.passed and first.registered_version is not None
    assert (first.run_dir / "drift_reference.json").is_file()
    store = open_store(cfg.registry)
    promote(cfg.name, store=store)
    return cfg, store


def test_shifted_traffic_drifts_triggers_a_retrain_and_a_gated_challenger_wins_on_recent_traffic(loop):
    cfg, store = loop
    with pytest.raises(RetrainError, match="no new labels for loop-toy since the config's data"):
        retrain(cfg, store=store)  # nothing labeled yet: nothing to retrain on, and no empty dataset version
    assert not (cfg.retrain.datasets_dir and any(Path(cfg.retrain.datasets_dir).glob("*/v*")))
    app = create_app(cfg.name, settings=cfg.serving, store=store, prediction_log=prediction_log_for(cfg.serving))
    with TestClient(app) as client:
        _serve(client, movie_reviews(90, seed=2))
        # Before the shift: the traffic looks like the training data, and the model is good on it.
        before = monitor(cfg, window="90", store=store)
        assert before["drift"]["status"] == "ok" and not before["drift"]["detected"], before["drift"]
        assert before["live"]["versions"][1]["status"] == "ok"
        assert act(cfg, before, store=store)["action"] == "none"

        _serve(client, product_reviews(200, seed=3))
        # Bad feedback is refused with the right status, and names what is wrong.
        unknown = client.post("/v1/feedback", json={"request_id": "nope", "label": "pos"})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]["message"]
        rid = client.post("/v1/classify", json={"input": "sturdy phone"}).json()["request_id"]
        bad = client.post("/v1/feedback", json={"request_id": rid, "label": "meh"})
        assert bad.status_code == 422 and "'meh' is not one of" in bad.json()["error"]["message"]

    after = monitor(cfg, window="120", store=store)
    drift = after["drift"]
    assert drift["detected"] and "token_distribution" in drift["flagged"] and "embedding_mmd" in drift["flagged"]
    assert "label_psi" in drift["flagged"]  # the champion answers the new traffic with a very different label mix
    live = after["live"]["versions"][1]
    assert live["status"] == "breach" and live["macro_f1"] < cfg.monitoring.slo.macro_f1 and live["burn_rate"] > 1
    html = open(after["files"]["html"]).read()
    assert "DRIFT" in html and html.count("data:image/png;base64,") == 2
    prom = open(after["files"]["prometheus"]).read()
    assert 'tunesmith_drift_detected{model="loop-toy"} 1.0' in prom and "tunesmith_error_budget_burn_rate" in prom

    result = act(cfg, after, store=store)
    assert {t["name"] for t in result["fired"]} >= {"drift", "live_f1_below_slo"}
    assert result["action"] == "retrained", result
    retrained = result["retrain"]
    assert retrained["passed"], retrained["reasons"]
    recent = retrained["recent"]
    assert recent["rows"] >= 20 and recent["passed"]
    assert recent["challenger"]["macro_f1"] > recent["champion"]["macro_f1"] + 0.2

    # The registry holds the trail: who the challenger came from, on which data, why it was trained.
    version = get_version(cfg.name, retrained["registered_version"], store=store)
    assert "challenger" in version.aliases
    tags = version.tags
    assert tags["tunesmith.parent_version"] == "1" and tags["tunesmith.dataset_version"] == "1"
    assert set(json.loads(tags["tunesmith.label_sources"])) == {"feedback"}
    assert "drift" in tags["tunesmith.trigger"] and tags["tunesmith.recent_gate"] == "passed"
    assert tags["gate_decision"] == "passed" and tags["data_fingerprint"]
    # trained from the champion's weights, but "uplift" still means better than the base (a probe on the base's
    # features), not than a probe on the champion's, which the champion's good features would make unbeatable
    assert tags["base_model"] == cfg.model.base
    import yaml

    model = yaml.safe_load((Path(retrained["run_dir"]) / "config.yaml").read_text())["model"]
    assert model["base"] == cfg.model.base and model["init_from"] == str(model_dir_for(cfg.name, "champion", store=store))
    manifest = json.loads(open(f"{retrained['dataset_dir']}/manifest.json").read())
    assert manifest["rows"]["test"] == len(pd.read_json(f"{retrained['dataset_dir']}/test.jsonl", lines=True))
    assert 0 < manifest["train_from_parent"] < manifest["parent_train_rows"]  # rehearsal: a share of the old rows

    # Cron runs again on the same evidence: nothing new is acted on.
    again = act(cfg, after, store=store)
    assert again["action"] == "none" and {s["why"] for s in again["skipped"]} == {"already acted on"}
