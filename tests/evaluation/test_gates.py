import json

import pytest

from tunesmith.config import GatesConfig
from tunesmith.evaluation.gates import (
    NO_CHAMPION_NOTE,
    gate,
    is_valid_gate_metric,
    known_metrics_hint,
    primary_name,
    significance_rule,
    unknown_gate_metrics,
)

METRICS = {"accuracy": 0.8, "macro_f1": 0.75, "ece": 0.04, "uplift.macro_f1": 0.06, "uplift_ci_low.macro_f1": 0.01}


def policy(*rules: str, significant: bool = False) -> GatesConfig:
    return GatesConfig.model_validate({"rules": list(rules), "require_significant_uplift": significant})


@pytest.mark.parametrize(("rule", "passed"), [
    ("accuracy >= 0.8", True), ("accuracy >= 0.81", False),
    ("accuracy > 0.8", False), ("accuracy > 0.79", True),
    ("ece <= 0.04", True), ("ece <= 0.03", False),
    ("ece < 0.05", True), ("ece < 0.04", False),
    ("macro_f1 == 0.75", True), ("macro_f1 == 0.7", False),
])
def test_each_op(rule, passed):
    decision = gate(METRICS, policy(rule), primary_metric="macro_f1")
    assert decision.passed is passed
    assert decision.rules[0].passed is passed and decision.rules[0].value is not None
    assert (decision.rules[0].note == "") is passed  # failures say what was needed


def test_missing_metric_fails_with_known_metrics_listed():
    d = gate(METRICS, policy("macro_f2 >= 0.5"), primary_metric="macro_f1")
    assert not d.passed
    r = d.rules[0]
    assert r.value is None and "not measured" in r.note and "known metrics" in r.note and "macro_f1" in r.note


def test_vs_champion_without_champion_passes_with_note():
    d = gate(METRICS, policy("vs_champion.macro_f1 >= 0", "champion.accuracy >= 0.9"), primary_metric="macro_f1")
    assert d.passed and all(r.note == NO_CHAMPION_NOTE for r in d.rules)
    # with a champion, a missing comparison is a failure, not a pass
    d = gate(METRICS, policy("vs_champion.macro_f1 >= 0"), primary_metric="macro_f1", has_champion=True)
    assert not d.passed and "not measured" in d.rules[0].note
    d = gate({**METRICS, "vs_champion.macro_f1": -0.02}, policy("vs_champion.macro_f1 >= -0.01"),
             primary_metric="macro_f1")
    assert not d.passed and d.rules[0].value == -0.02


def test_champion_that_was_not_compared_fails_its_rules_with_the_reason():
    why = "champion v3 has labels ['a', 'b'], not this run's ['neg', 'pos']"
    d = gate(METRICS, policy("vs_champion.macro_f1 >= -1", "champion.accuracy >= 0", "accuracy >= 0.5"),
             primary_metric="macro_f1", has_champion=True, champion_note=why)
    assert not d.passed and [r.passed for r in d.rules] == [False, False, True]
    assert d.rules[0].note == f"champion not compared: {why}" and d.rules[0].value is None
    assert f"vs_champion.macro_f1 >= -1 (champion not compared: {why})" in d.summary  # the reason, not a bare "not measured"


def test_every_rule_is_evaluated_and_listed():
    d = gate(METRICS, policy("accuracy >= 0.9", "macro_f1 >= 0.7", "nope >= 1", "ece <= 0.1"),
             primary_metric="macro_f1")
    assert [r.passed for r in d.rules] == [False, True, False, True]
    assert not d.passed and [r.rule for r in d.failed] == ["accuracy >= 0.9", "nope >= 1"]
    table = d.to_table()
    assert table.count("FAIL") >= 2 and "PASS" in table and "macro_f1 >= 0.7" in table
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert len(data["rules"]) == 4 and data["passed"] is False and "2 of 4" in data["summary"]


def test_require_significant_uplift_adds_rule_on_primary_metric():
    d = gate(METRICS, policy("accuracy >= 0.5", significant=True), primary_metric="eval_macro_f1")
    assert [r.rule for r in d.rules] == ["accuracy >= 0.5", "uplift_ci_low.macro_f1 > 0"]
    assert d.passed and "above 0" in d.rules[1].note
    d = gate({**METRICS, "uplift_ci_low.macro_f1": -0.01}, policy(significant=True), primary_metric="macro_f1")
    assert not d.passed and "not significant" in d.rules[0].note
    d = gate(METRICS, policy(significant=True), primary_metric="accuracy")  # no CI measured for accuracy here
    assert not d.passed and d.rules[0].value is None


def test_loss_is_log_loss_and_lower_is_better():
    assert primary_name("loss") == primary_name("eval_loss") == "log_loss"
    assert str(significance_rule("loss")) == "uplift_ci_high.log_loss < 0"
    assert str(significance_rule("eval_macro_f1")) == "uplift_ci_low.macro_f1 > 0"
    better = {"uplift.log_loss": -0.2, "uplift_ci_low.log_loss": -0.3, "uplift_ci_high.log_loss": -0.1}
    d = gate(better, policy(significant=True), primary_metric="loss")
    assert d.passed and d.rules[0].rule == "uplift_ci_high.log_loss < 0" and "below 0" in d.rules[0].note
    worse = {"uplift.log_loss": 0.2, "uplift_ci_low.log_loss": 0.1, "uplift_ci_high.log_loss": 0.3}
    d = gate(worse, policy(significant=True), primary_metric="loss")  # a higher loss is never a significant uplift
    assert not d.passed and "not significant" in d.rules[0].note


def test_nan_fails_and_empty_policy_passes():
    d = gate({"accuracy": float("nan")}, policy("accuracy >= 0"), primary_metric="macro_f1")
    assert not d.passed and "NaN" in d.rules[0].note
    d = gate(METRICS, GatesConfig(), primary_metric="macro_f1")
    assert d.passed and d.rules == [] and "no gate rules" in d.to_table()


def test_config_short_form_and_unknown_metric_names():
    p = GatesConfig.model_validate(["macro_f1 >= 0.8", "uplift_ci_low.accuracy > 0", "top_3_accuracy >= 0.9",
                                    "vs_champion.ece <= 0.01", "macro_f2 >= 1", "uplift.temperature > 1",
                                    "uplift.bogus > 0", "slice.genre >= 0"])
    assert unknown_gate_metrics(p) == ["macro_f2", "uplift.temperature", "uplift.bogus", "slice.genre"]
    p = policy("accuracy >= 0.5", significant=True)
    assert unknown_gate_metrics(p, primary_metric="loss") == []  # checks uplift_ci_high.log_loss
    assert unknown_gate_metrics(p, primary_metric="eval_accuracy") == []
    assert is_valid_gate_metric("baseline.log_loss") and is_valid_gate_metric("vs_champion_p_value.macro_f1")
    hint = known_metrics_hint()
    assert "macro_f1" in hint and "log_loss" in hint and "top_<k>_accuracy" in hint and "vs_champion.<m>" in hint


def test_package_exports_resolve_and_gates_load_without_torch():
    import subprocess
    import sys

    import tunesmith.evaluation as ev

    assert sorted(ev.__all__) == sorted(ev._WHERE)
    assert all(getattr(ev, name) is not None for name in ev.__all__)
    code = "import sys; from tunesmith.evaluation import gate, unknown_gate_metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # config checks in the CLI stay fast


def test_evaluate_is_the_function_even_after_its_module_was_imported():
    import subprocess
    import sys

    code = ("from tunesmith.evaluation import write_report; from tunesmith.evaluation import evaluate; "
            "print(callable(evaluate) and evaluate.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "evaluate"
