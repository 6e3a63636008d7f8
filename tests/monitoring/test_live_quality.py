"""Live quality beyond classification: each family's metrics on served answers with feedback (checked by hand), and
`live_quality`'s per-version CI, series and SLO verdict in the direction each metric is better."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from tunesmith import families
from tunesmith.config import SloConfig
from tunesmith.contracts import FeedbackHooks
from tunesmith.monitoring.live import live_quality
from tunesmith.monitoring.monitor_report import gauges, render_html


def live(kind: str):
    return families.get(kind).feedback.live


def test_multilabel_micro_macro_f1_and_hamming_loss():
    pairs = [({"labels": ["a", "b"]}, ["a"], "r1"), ({"labels": []}, ["c"], "r2")]
    got = live("multi-label")(pairs)
    # a: tp1; b: fp1; c: fn1 -> micro 2*1/(2+1+1) = 0.5; macro (1 + 0 + 0)/3; hamming (1 + 1) / (2 * 3)
    assert got["micro_f1"] == pytest.approx(0.5) and got["macro_f1"] == pytest.approx(1 / 3)
    assert got["hamming_loss"] == pytest.approx(2 / 6)


def test_regression_mae_rmse_spearman():
    got = live("regression")([(1.0, 2.0, "a"), (2.0, 2.5, "b"), (4.0, 3.0, "c")])
    assert got["mae"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert got["rmse"] == pytest.approx(math.sqrt((1 + 0.25 + 1) / 3)) and got["spearman"] == pytest.approx(1.0)
    assert live("regression")([(1.0, 1.0, "a")])["spearman"] is None  # too few to rank


def test_token_classification_entity_f1_needs_start_end_and_label():
    served = [{"start": 0, "end": 3, "label": "PER", "score": 0.9}, {"start": 4, "end": 7, "label": "PER"}]
    true = [{"start": 0, "end": 3, "label": "PER", "text": "Ann"}, {"start": 4, "end": 7, "label": "ORG"}]
    got = live("token-classification")([(served, true, "r")])
    assert (got["precision"], got["recall"], got["entity_f1"]) == (0.5, 0.5, 0.5)


def test_reranking_mrr_and_ndcg_per_request():
    pairs = [(0.9, 0.0, "q1"), (0.8, 2.0, "q1"), (0.1, 1.0, "q1"),  # the relevant one ranked 2nd
             (0.7, 1.0, "q2"), (0.2, 0.0, "q2"),                    # ranked 1st
             (0.5, 0.0, "q3")]                                      # nothing relevant graded: not counted
    got = live("reranking")(pairs)
    assert got["queries"] == 2 and got["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)
    dcg = 3 / math.log2(3) + 1 / math.log2(4)
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    assert got["ndcg@10"] == pytest.approx((dcg / ideal + 1.0) / 2)


def test_chat_thumbs_up_and_corrected_rates():
    got = live("causal-lm")([(None, {"thumbs": "up"}, "a"), (None, {"thumbs": "down", "correction": "x"}, "b"),
                             (None, {"thumbs": "up"}, "c"), (None, {"thumbs": "down"}, "d")])
    assert got == {"thumbs_up_rate": 0.5, "corrected_rate": 0.25}


def _rows(pairs, version=1):
    start = datetime(2026, 12, 1, 8, tzinfo=timezone.utc)
    return [{"version": version, "role": "champion", "request_id": f"r{version}-{i}", "answer": out, "true_value": true,
             "ts": start + timedelta(minutes=20 * i)} for i, (out, true) in enumerate(pairs)]


def test_live_quality_gives_a_ci_a_series_and_judges_each_target_in_its_direction():
    hooks = families.get("regression").feedback
    good = _rows([(float(v), float(v) + 0.1) for v in range(12)])
    bad = _rows([(float(v), float(v) + 2.0) for v in range(12)], version=2)
    slo = SloConfig(targets={"mae": 0.5, "spearman": 0.9}, min_labels=5, bucket="1h")
    report = live_quality(good + bad, hooks, slo)
    v1, v2 = report["versions"][1], report["versions"][2]
    assert report["primary"] == "mae" and v1["mae"] == pytest.approx(0.1) and v1["status"] == "ok"
    assert v1["ci"]["low"] <= v1["mae"] <= v1["ci"]["high"] and len(v1["series"]) == 4  # 20-minute steps, 1h buckets
    assert v2["status"] == "breach" and v2["note"] == "mae 2.000 > 0.5"  # lower is better for an error
    few = live_quality(good[:3], hooks, slo)["versions"][1]
    assert few["status"] == "n/a" and "min_labels" in few["note"]
    with pytest.raises(ValueError, match="monitoring.slo.targets: accuracy not measured for this family"):
        live_quality(good, hooks, SloConfig(targets={"accuracy": 0.9}))
    unmeasured = FeedbackHooks(shape="a value", check=lambda v, _labels, _logged=None: v)  # a family without live
    none_yet = live_quality(good, unmeasured, slo)
    assert none_yet["status"] == "n/a" and none_yet["versions"] == {}


def test_the_monitor_report_renders_and_exports_live_quality():
    hooks = families.get("causal-lm").feedback
    rows = _rows([(None, {"thumbs": "up"}), (None, {"thumbs": "down"})] * 3)
    live = {"kind": "quality", **live_quality(rows, hooks, SloConfig(targets={"thumbs_up_rate": 0.8}, min_labels=2))}
    report = {"model": "support", "window": "500", "generated_at": "now", "predictions": 6, "labeled": 6,
              "drift": {"status": "n/a", "note": "no drift reference"}, "live": live}
    page = render_html(report)
    assert "Live quality" in page and "thumbs_up_rate 0.500 &lt; 0.8" in page and "<script" not in page
    registry = gauges(report)
    value = registry.get_sample_value("tunesmith_live_quality",
                                      {"model": "support", "version": "1", "metric": "thumbs_up_rate"})
    assert value == pytest.approx(0.5)


def test_chat_json_validity_needs_no_feedback_and_breaches_its_target_even_without_labels(tmp_path):
    """A chat model told to answer JSON: the share of its served answers that validate is a live metric of every
    answer, so one labeled answer (below min_labels) does not hide a breach."""
    from tunesmith.config import config_from_dict

    schema = {"type": "object", "required": ["intent"]}
    cfg = config_from_dict({"name": "c", "task": "causal-lm", "data": {"path": "chats.jsonl"}, "evaluation": {"json_schema": schema},
                            "monitoring": {"slo": {"targets": {"json_valid_rate": 0.9}, "min_labels": 20}}})
    hooks = families.get("causal-lm").feedback
    served = [{"version": 1, "role": "champion", "output": {"text": text, "finish_reason": "stop"}}
              for text in ['{"intent": "refund"}', "Sure! Your refund is on its way.", '{"intent": "order"}',
                           '```json\n{"intent": "order"}\n```']]
    assert hooks.served(served, cfg) == {"json_valid_rate": 0.75}
    report = live_quality(_rows([(None, {"thumbs": "up"})]), hooks, cfg.monitoring.slo, served_rows=served,
                          extra_of=lambda version, rows: hooks.served(rows, cfg))
    v1 = report["versions"][1]
    assert v1["n"] == 1 and v1["json_valid_rate"] == 0.75 and v1["thumbs_up_rate"] == 1.0
    assert v1["status"] == "breach" and v1["note"] == "json_valid_rate 0.750 < 0.9"
    no_schema = config_from_dict({"name": "c", "task": "causal-lm", "data": {"path": "chats.jsonl"}})
    assert hooks.served(served, no_schema) == {}


def test_scheduled_checks_run_once_per_period_per_version_and_report_the_last_result(tmp_path):
    from tunesmith.config import config_from_dict
    from tunesmith.monitoring.monitor import scheduled_checks

    cfg = config_from_dict({"name": "c", "task": "causal-lm", "data": {"path": "chats.jsonl"},
                            "monitoring": {"report_dir": str(tmp_path), "checks_every": "1d"}})
    calls = []

    def suite(_cfg, model_dir):
        calls.append(model_dir)
        return {"regression_pass_rate": 0.5, "failed": ["refund-policy"]}

    dirs = {1: tmp_path / "v1", 2: None}.get
    first = scheduled_checks(cfg, "c", 1, suite, dirs, now=1e9)
    assert first["regression_pass_rate"] == 0.5 and first["checks"]["failed"] == ["refund-policy"]
    assert first["checks"]["ran_now"] and calls == [tmp_path / "v1"]
    later = scheduled_checks(cfg, "c", 1, suite, dirs, now=1e9 + 3600)  # an hour later: the stored result
    assert later["regression_pass_rate"] == 0.5 and not later["checks"]["ran_now"] and len(calls) == 1
    assert later["checks"]["at"] == first["checks"]["at"]
    assert scheduled_checks(cfg, "c", 1, suite, dirs, now=1e9 + 86400)["checks"]["ran_now"] and len(calls) == 2
    assert scheduled_checks(cfg, "c", 2, suite, dirs, now=1e9) == {}  # the version's model is gone: nothing to run
    off = cfg.model_copy(deep=True)
    off.monitoring.checks_every = None
    assert scheduled_checks(off, "c", 1, suite, dirs, now=2e9) == {} and len(calls) == 2


@pytest.mark.parametrize(("task", "targets", "message"), [
    ("regression", {"mae": 0.5, "rmse": 0.7}, None),
    ("regression", {"accuracy": 0.9}, "monitoring.slo.targets: accuracy is not measured for regression; it measures "
                                      "mae, rmse, spearman"),
    ("classification", {"accuracy": 0.9}, "live objectives are monitoring.slo.accuracy and monitoring.slo.macro_f1"),
    ("embedding", {"recall@10": 0.5}, None),
    ("embedding", {"mae": 0.5}, "mae is not measured for embedding; it measures mrr@10, recall@1, recall@10"),
])
def test_slo_targets_are_checked_against_the_family_when_the_config_loads(tmp_path, task, targets, message):
    from tunesmith.config import config_from_dict

    raw = {"name": "m", "task": task, "data": {"path": str(tmp_path / "d.jsonl")},
           "monitoring": {"slo": {"targets": targets}}}
    if message is None:
        assert config_from_dict(raw).monitoring.slo.targets == targets
    else:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            config_from_dict(raw)


def test_embedding_ranks_each_accepted_document_among_the_window_s_by_the_version_s_own_vectors():
    from tunesmith.families.embedding import live as embedding_live

    key = "/fake/model/dir"  # vectors as the version's model would give them, so nothing is loaded
    for doc, vector in (("reset password", [1.0, 0.0]), ("opening hours", [0.0, 1.0]), ("refund policy", [0.7, 0.7])):
        embedding_live._VECTORS[(key, doc)] = np.asarray(vector)
    pairs = [([0.9, 0.1], {"document": "reset password", "relevance": 1.0}, "a"),   # ranked 1st
             ([0.1, 0.9], {"document": "opening hours", "relevance": 1.0}, "b"),    # 1st
             ([1.0, 0.05], {"document": "refund policy", "relevance": 1.0}, "c"),   # 2nd, after "reset password"
             ([1.0, 0.0], {"document": "opening hours", "relevance": 0.0}, "d")]    # not relevant: not a query
    got = live("embedding")(pairs, model_dir=key)
    assert got["candidates"] == 3 and got["recall@1"] == pytest.approx(2 / 3)
    assert got["mrr@10"] == pytest.approx((1 + 1 + 0.5) / 3) and got["recall@10"] == 1.0


def test_the_human_review_rate_is_not_measured_before_the_queue_was_ever_filled(tmp_path):
    from tunesmith.monitoring.monitor import review_section
    from tunesmith.monitoring.predictions import db_engine

    url = f"sqlite:///{tmp_path}/log.db"
    db_engine(url).dispose()
    section = review_section(url, "m", [{"request_id": "r1"}], 0.2)
    assert section["rate"] is None and section["status"] == "n/a" and "never been filled" in section["note"]
