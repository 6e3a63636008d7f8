"""A model's runbook (`tunesmith ops runbook`, RUNBOOK.md with every registered version): a section for every alert its
rules raise, at the anchor the alert's runbook_url links to, with the model's own commands, and who is on call; and the
two operator commands it names that change state: `models retire` (take a challenger out now) and pausing retraining
(checked in tests/families/test_loop.py)."""

from __future__ import annotations

import re

import pytest
import yaml
from tests.integration.test_cli_run import in_process
from tests.serving.serve_helpers import register

from tunesmith.config import ConfigError, config_from_dict
from tunesmith.ops import runbook, slo_rules
from tunesmith.registry import audit_log, get_version, show_model


def _cfg(**monitoring):
    return config_from_dict({"name": "sentiment", "data": {"path": "x.csv"}, "monitoring": monitoring,
                             "registry": {"tracking_uri": "postgresql://ml:s3cret@db:5432/mlflow"}})


def test_every_alert_links_to_its_section_of_the_models_runbook():
    cfg = _cfg(alerts={"runbook_url": "https://wiki.example.com/ml/{model}/runbook#{alert}", "owner": "ml-oncall"},
               slo={"targets": {}, "macro_f1": 0.7})
    text = runbook(cfg)
    anchors = set(re.findall(r'<a id="([a-z]+)"></a>', text))
    alerts = [r for g in slo_rules(cfg)["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 8
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url.startswith("https://wiki.example.com/ml/sentiment/runbook#") and url.rsplit("#")[1] in anchors
        assert f"`{alert['alert']}`" in text and alert["labels"]["owner"] == "ml-oncall"
    assert "**On call:** ml-oncall" in text and "tunesmith models rollback sentiment" in text
    assert "tunesmith ops pause-retraining" in text and "tunesmith models retire sentiment" in text
    assert "s3cret" not in text and "postgresql://ml:***@db:5432/mlflow" in text  # the registry URL's password
    with pytest.raises(ConfigError, match="runbook_url"):
        _cfg(alerts={"runbook_url": "https://wiki/{team}/{alert}"})


def test_the_runbook_command_fills_in_the_config_path(tmp_path):
    (tmp_path / "prod.yaml").write_text(yaml.safe_dump({"name": "sentiment", "data": {"path": "x.csv"}}))
    out = in_process("ops", "runbook", "--config", "prod.yaml", cwd=tmp_path).output
    text = (tmp_path / "runbooks/sentiment.md").read_text()
    assert "wrote runbooks/sentiment.md" in out
    assert "tunesmith monitor --config prod.yaml" in text and "nobody named" in text  # no owner in that config


def test_retire_takes_the_challenger_out_and_never_touches_the_champion(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    register(store, tmp_path, "clf", classifier_dirs[1], champion=False)
    uri = store.tracking_uri
    out = in_process("models", "retire", "clf", "--reason", "worse on refunds", "--tracking-uri", uri,
                     cwd=tmp_path).output
    assert "challenger version 2 retired" in out
    aliases = show_model("clf", store=store)["aliases"]
    assert aliases == {"champion": 1}
    tags = get_version("clf", 2, store=store).tags
    assert tags["tunesmith.rollback_reason"] == "worse on refunds"
    (entry,) = audit_log("clf", store=store)
    assert entry["action"] == "retire" and entry["version"] == 2 and entry["reason"] == "worse on refunds"
    again = in_process("models", "retire", "clf", "--reason", "x", "--tracking-uri", uri, cwd=tmp_path, check_code=2)
    assert "has no challenger to retire" in again.output


def test_pause_and_resume_retraining_from_the_cli_and_the_console_needs_a_token(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNESMITH_SERVE_TOKEN", raising=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "sentiment", "data": {"path": "x.csv"},
                                                     "monitoring": {"report_dir": "mon"}}))
    out = in_process("ops", "pause-retraining", "--config", "c.yaml", "--reason", "freeze", "--by", "ana",
                     cwd=tmp_path).output
    assert "retraining of sentiment paused by ana" in out
    state = yaml.safe_load((tmp_path / "mon/sentiment/state.json").read_text())
    assert state["paused"]["reason"] == "freeze"
    assert "resumed (the pause by ana: freeze)" in in_process("ops", "resume-retraining", "--config", "c.yaml",
                                                              cwd=tmp_path).output
    assert "was not paused" in in_process("ops", "resume-retraining", "--config", "c.yaml", cwd=tmp_path).output
    refused = in_process("ui", "--config", "c.yaml", cwd=tmp_path, check_code=2)
    assert "needs the serving token ($TUNESMITH_SERVE_TOKEN" in refused.output
