"""`tunesmith ops rules`: the generated Prometheus rules pass Prometheus' own `promtool check rules`, and
`promtool test rules` runs input series through them: a fast burn pages, a two-minute blip after three good days
pages nobody and files no ticket, a steady 1% error rate files a ticket and pages nobody, slow answers page on the
latency objective, and live quality, drift, a stale monitor and a rollback file tickets."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml
from typer.testing import CliRunner

from tunesmith.config import config_from_dict
from tunesmith.ops import slo_rules, write_rules

PROMTOOL = shutil.which("promtool")

REQ = 'tunesmith_requests_total{{model="m",version="1",route="/v1/classify",role="champion",status="{}"}}'
LAT = 'tunesmith_request_latency_seconds_{}{{model="m",version="1",route="/v1/classify",role="champion"{}}}'


def _cfg(**over):
    return config_from_dict({"name": "m", "data": {"path": "x.csv"},
                             "monitoring": {"alerts": {"runbook_url": "https://wiki.example.com/runbooks#{alert}"}},
                             **over})


def _expected(rules: dict, alert: str, **labels) -> dict:
    """The alert as promtool reports it: the rule's labels plus the series' labels, annotations with $labels filled."""
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert)
    fill = lambda text: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)  # noqa: E731
    return {"exp_labels": {**rule["labels"], **labels},
            "exp_annotations": {k: fill(v) for k, v in rule["annotations"].items()}}


def _promtool_test(tmp_path, cfg, tests: list[dict], every: str = "1m") -> subprocess.CompletedProcess:
    """Write the rules, `promtool check rules` them, then `promtool test rules` the tests (rules evaluated `every`)."""
    assert PROMTOOL, "promtool missing: `apt-get install prometheus` (make test does it)"
    write_rules(cfg, tmp_path / "rules.yml")
    checked = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": every,
                                                       "tests": tests}, sort_keys=False))
    return subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


FAST, SLOW = "TunesmithAvailabilityFastBurn", "TunesmithAvailabilitySlowBurn"
V1 = {"model": "m", "version": "1"}


def test_a_fast_burn_or_slow_answers_page_within_the_hour(tmp_path):
    cfg = _cfg()
    rules = slo_rules(cfg)
    tests = [
        {"interval": "1m", "input_series": [  # 20% of requests fail for an hour
            {"series": REQ.format(200), "values": "0+80x70"}, {"series": REQ.format(500), "values": "0+20x70"}],
         "alert_rule_test": [{"eval_time": "60m", "alertname": FAST, "exp_alerts": [_expected(rules, FAST, **V1)]}]},
        {"interval": "1m", "input_series": [  # a quiet hour, then every request fails: paged within minutes
            {"series": REQ.format(200), "values": "0+100x60 6000x30"},
            {"series": REQ.format(500), "values": "0x60 100+100x30"}],
         "alert_rule_test": [{"eval_time": "58m", "alertname": FAST, "exp_alerts": []},
                             {"eval_time": "70m", "alertname": FAST, "exp_alerts": [_expected(rules, FAST, **V1)]}]},
        {"interval": "1m", "input_series": [  # 80% of answers slower than the p95 objective's 0.5 s
            {"series": LAT.format("bucket", ',le="0.5"'), "values": "0+20x70"},
            {"series": LAT.format("count", ""), "values": "0+100x70"}],
         "alert_rule_test": [{"eval_time": "60m", "alertname": "TunesmithLatencyP95FastBurn",
                              "exp_alerts": [_expected(rules, "TunesmithLatencyP95FastBurn", **V1)]}]},
    ]
    run = _promtool_test(tmp_path, cfg, tests)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_blip_after_three_good_days_pages_nobody_and_a_steady_one_percent_files_a_ticket(tmp_path):
    cfg = _cfg()
    rules = slo_rules(cfg)
    tests = [  # 5-minute samples (promtool evaluates every 5m over the three days)
        {"interval": "5m", "input_series": [  # three good days, then 40% of one 5-minute step fails
            {"series": REQ.format(200), "values": "0+500x880"}, {"series": REQ.format(500), "values": "0x864 200x15"}],
         "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": []}
                             for t in ("4325m", "4340m", "4400m") for a in (FAST, SLOW)]},
        {"interval": "5m", "input_series": [  # 1% of requests fail for three days
            {"series": REQ.format(200), "values": "0+495x880"}, {"series": REQ.format(500), "values": "0+5x880"}],
         "alert_rule_test": [{"eval_time": "4340m", "alertname": SLOW, "exp_alerts": [_expected(rules, SLOW, **V1)]},
                             {"eval_time": "4340m", "alertname": FAST, "exp_alerts": []}]},
    ]
    run = _promtool_test(tmp_path, cfg, tests, every="5m")
    assert run.returncode == 0, run.stdout + run.stderr


def test_quality_drift_a_stale_monitor_a_rollback_and_much_human_review_file_tickets(tmp_path):
    cfg = _cfg(monitoring={"alerts": {"monitor_every": "1h"}, "slo": {"macro_f1": 0.8}})
    rules = slo_rules(cfg)
    v1 = {"model": "m", "version": "1"}
    tests = [{"interval": "1m", "input_series": [
        {"series": 'tunesmith_error_budget_burn_rate{model="m",version="1"}', "values": "2x10"},
        {"series": 'tunesmith_live_macro_f1{model="m",version="1"}', "values": "0.9x10"},
        {"series": 'tunesmith_drift_detected{model="m"}', "values": "1x10"},
        {"series": 'tunesmith_monitor_last_run_timestamp_seconds{model="m"}', "values": "0x300"},
        {"series": 'tunesmith_rollbacks_total{model="m",version="2",reason="error_rate"}', "values": "0 0 1 1 1"},
        {"series": 'tunesmith_human_review_rate{model="m"}', "values": "0.1 0.1 0.1 0.35 0.35 0.35"}],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": "TunesmithHumanReviewRateHigh", "exp_alerts": []},  # 10% <= 20%
            {"eval_time": "4m", "alertname": "TunesmithHumanReviewRateHigh",
             "exp_alerts": [_expected(rules, "TunesmithHumanReviewRateHigh", model="m")]},
            {"eval_time": "5m", "alertname": "TunesmithLiveAccuracyBudgetBurn",
             "exp_alerts": [_expected(rules, "TunesmithLiveAccuracyBudgetBurn", **v1)]},
            {"eval_time": "5m", "alertname": "TunesmithLiveMacroF1BelowSLO", "exp_alerts": []},  # 0.9 >= 0.8
            {"eval_time": "5m", "alertname": "TunesmithDriftDetected",
             "exp_alerts": [_expected(rules, "TunesmithDriftDetected", model="m")]},
            {"eval_time": "60m", "alertname": "TunesmithMonitorStale", "exp_alerts": []},
            {"eval_time": "180m", "alertname": "TunesmithMonitorStale",
             "exp_alerts": [_expected(rules, "TunesmithMonitorStale", model="m")]},
            {"eval_time": "4m", "alertname": "TunesmithChallengerRolledBack",
             "exp_alerts": [_expected(rules, "TunesmithChallengerRolledBack", model="m", version="2",
                                      reason="error_rate")]}]}]
    run = _promtool_test(tmp_path, cfg, tests)
    assert run.returncode == 0, run.stdout + run.stderr


def test_a_family_live_quality_target_alerts_in_its_direction(tmp_path):
    cfg = _cfg(task="regression", monitoring={"slo": {"targets": {"mae": 0.5, "spearman": 0.6}}})
    rules = slo_rules(cfg)
    tests = [{"interval": "1m", "input_series": [
        {"series": 'tunesmith_live_quality{model="m",version="1",metric="mae"}', "values": "0.9x10"},
        {"series": 'tunesmith_live_quality{model="m",version="1",metric="spearman"}', "values": "0.7x10"}],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "TunesmithLiveMaeBelowSLO",  # lower is better: 0.9 > 0.5 fires
             "exp_alerts": [_expected(rules, "TunesmithLiveMaeBelowSLO", model="m", version="1", metric="mae")]},
            {"eval_time": "5m", "alertname": "TunesmithLiveSpearmanBelowSLO", "exp_alerts": []}]}]
    run = _promtool_test(tmp_path, cfg, tests)
    assert run.returncode == 0, run.stdout + run.stderr


def test_cli_writes_the_rules_and_refuses_a_latency_objective_off_the_histogram(tmp_path, monkeypatch):
    from tunesmith.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("name: m\ndata: {path: x.csv}\n")
    out = CliRunner().invoke(app, ["ops", "rules", "--config", "c.yaml", "--out", "rules/m.yml"])
    assert out.exit_code == 0, out.output
    written = yaml.safe_load((tmp_path / "rules/m.yml").read_text())
    alerts = [r["alert"] for r in written["groups"][1]["rules"]]
    assert {"TunesmithAvailabilityFastBurn", "TunesmithLatencyP99SlowBurn", "TunesmithDriftDetected"} <= set(alerts)
    (tmp_path / "bad.yaml").write_text("name: m\ndata: {path: x.csv}\nmonitoring: {slo: {latency_p95_s: 0.3}}\n")
    bad = CliRunner().invoke(app, ["ops", "rules", "--config", "bad.yaml"])
    assert bad.exit_code != 0 and "monitoring.slo.latency_p95_s" in bad.output and "0.25, 0.5" in bad.output
