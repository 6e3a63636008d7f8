"""Per-answer metrics and the YAML regression suite of causal-lm evaluation."""

from __future__ import annotations

import pytest

from tunesmith.config import GatesConfig
from tunesmith.evaluation import EvalError, gate
from tunesmith.families.causal_lm.evaluate import CausalEvalReport
from tunesmith.families.causal_lm.suite import check, load_suite
from tunesmith.families.causal_lm.text_metrics import exact_match, json_valid, rouge_l


def test_exact_match_and_rouge_l():
    assert exact_match(["The  Order is shipped", "no"], ["the order is shipped", "yes"]) == [1.0, 0.0]
    scores = rouge_l(["the order is shipped", "sunny weather", "x"], ["the order is shipped", "the weather is sunny", "y"])
    assert scores[0] == 1.0 and 0 < scores[1] < 1 and scores[2] == 0.0


def test_json_validity_against_a_schema():
    schema = {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}
    scores, reasons = json_valid(['{"city": "Paris"}', '```json\n{"city": "Oslo"}\n```', '{"town": 1}', "Paris"], schema)
    assert scores == [1.0, 1.0, 0.0, 0.0]
    assert "'city' is a required property" in reasons[2] and reasons[3].startswith("not JSON")


def test_regression_suite_checks_required_and_forbidden(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text('- name: refund\n  prompt: "refund?"\n  require: ["30 days"]\n  forbid_regex: ["(?i)as an ai"]\n')
    (case,) = load_suite(path)
    assert check(case, "Refunds within 30 DAYS.").passed
    result = check(case, "As an AI I cannot say")
    assert not result.passed and result.failures == ["missing '30 days'", "matches forbidden /(?i)as an ai/"]


def test_regression_suite_problems_name_file_and_line(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text('- name: ok\n  prompt: "hi"\n  require: ["x"]\n- name: bad\n  require: ["x"]\n'
                    '- prompt: "p"\n  requires: ["x"]\n')
    with pytest.raises(EvalError) as err:
        load_suite(path)
    assert f"{path}:4: needs a prompt" in str(err.value) and f"{path}:6: unknown keys ['requires']" in str(err.value)


def test_gates_read_causal_metrics_like_classification_ones():
    report = CausalEvalReport(primary_metric="rouge_l", tuned={"rouge_l": 0.6, "loss": 1.0},
                              baseline={"rouge_l": 0.2, "loss": 2.0},
                              uplift={"rouge_l": {"delta": 0.4, "ci_low": 0.3, "ci_high": 0.5, "p_value": 0.0},
                                      "loss": {"delta": -1.0}})
    flat = report.flat_metrics()
    assert flat["uplift.rouge_l"] == 0.4 and flat["baseline.loss"] == 2.0 and flat["uplift_ci_low.rouge_l"] == 0.3
    policy = GatesConfig.model_validate({"rules": ["rouge_l >= 0.5", "uplift.loss < 0"], "require_significant_uplift": True})
    decision = gate(flat, policy, primary_metric=report.primary_metric, has_champion=False)
    assert decision.passed and decision.rules[-1].rule == "uplift_ci_low.rouge_l > 0"
    assert not gate(flat, GatesConfig.model_validate(["rouge_l >= 0.7"]), primary_metric="rouge_l").passed
