"""Promotion gates: every rule in the config checked against the flat metrics of an evaluation.

    gate(report.flat_metrics(), cfg.gates, primary_metric=cfg.training.metric)

All rules are evaluated (no short-circuit) so a failed run shows everything that is wrong at once.
A metric that was never measured fails. `vs_champion.*` / `champion.*` / `slices.worst_vs_champion.*` rules pass
only while there is no champion yet; a champion that exists but could not be compared fails them, with the reason as
the note. A `slices.*` rule's note carries the bootstrap CI of its value (`tunesmith.evaluation.slices`).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from tunesmith.config import GateRule, GatesConfig
from tunesmith.config.family_rules import SLICE_GATE_FORMS, slice_gate_parts
from tunesmith.evaluation.metrics import KNOWN_METRICS, higher_is_better, is_known_metric
from tunesmith.evaluation.safety import GATE_METRICS as SAFETY_METRICS
from tunesmith.io import json_safe

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)}
# Prefixed names read the baseline's and champion's metrics, or the tuned model's difference to them
# with its paired-bootstrap CI and p-value.
_MODEL_PREFIXES = ("baseline.", "champion.", "uplift.", "vs_champion.") + tuple(
    f"{c}_{s}." for c in ("uplift", "vs_champion") for s in ("ci_low", "ci_high", "p_value"))
_TUNED_ONLY = ("ece_calibrated", "nll_calibrated", "temperature")
_CHAMPION_PREFIXES = ("vs_champion.", "vs_champion_", "champion.")
NO_CHAMPION_NOTE = "no champion yet"
_TRAINER_NAMES = {"loss": "log_loss"}  # the Trainer's eval loss is the mean cross-entropy, i.e. log loss


def primary_name(metric: str) -> str:
    """training.metric as the evaluation names it (`eval_` prefix dropped; `loss` is `log_loss`)."""
    name = metric.removeprefix("eval_")
    return _TRAINER_NAMES.get(name, name)


def significance_rule(primary_metric: str) -> GateRule:
    """What `require_significant_uplift` checks: the uplift's CI lies on the better side of 0.

    Higher-is-better metrics need `uplift_ci_low.<m> > 0`; losses and calibration errors `uplift_ci_high.<m> < 0`.
    """
    name = primary_name(primary_metric)
    if higher_is_better(name):
        return GateRule(metric=f"uplift_ci_low.{name}", op=">", value=0.0)
    return GateRule(metric=f"uplift_ci_high.{name}", op="<", value=0.0)


_DISTILL_RE = re.compile(r"^distill\.(?:(?:teacher|student|without_kd|gap|gap_ci_low|gap_ci_high|kd_gain|"
                         r"kd_gain_ci_low|kd_gain_ci_high)\.(?P<metric>[\w@]+)|speedup_b1|speedup_b32|size_ratio|cost_saving)$")


def is_distill_metric(name: str) -> bool:
    """Names the distillation comparison produces (`distill.gap.macro_f1`, `distill.speedup_b1`, ...)."""
    m = _DISTILL_RE.match(name)
    return m is not None and (m.group("metric") is None or is_known_metric(m.group("metric")))


# What a run's usage and answers cost (tunesmith.ops.cost): `cost.train <= 5`, `cost.per_1k <= 0.02`.
COST_METRICS = ("cost.train", "cost.per_1k", "cost.per_1k_core_seconds", "cost.storage_month", "cost.cpu_seconds",
                "cost.gpu_seconds", "cost.wall_seconds")

# The DP guarantee a `training.privacy` run trained under (tunesmith.training.privacy): `privacy.epsilon <= 8`;
# what `evaluation.privacy` measures (tunesmith.evaluation.privacy): `privacy.max_canary_exposure <= 10`,
# `privacy.pii_extraction_rate == 0`, `privacy.membership_auc <= 0.6`.
PRIVACY_METRICS = ("privacy.epsilon", "privacy.delta",
                   "privacy.max_canary_exposure", "privacy.mean_canary_exposure", "privacy.pii_extraction_rate",
                   "privacy.base_pii_extraction_rate", "privacy.pii_prompts", "privacy.membership_auc",
                   "privacy.membership_auc_ci_low", "privacy.membership_auc_ci_high")


def is_valid_gate_metric(name: str) -> bool:
    """Whether `name` is a metric an evaluation can produce (e.g. `macro_f1`, `uplift_ci_low.accuracy`)."""
    if name.startswith("cost."):
        return name in COST_METRICS
    if name.startswith("privacy."):
        return name in PRIVACY_METRICS
    if name.startswith("distill."):
        return is_distill_metric(name)
    if name.startswith(("safety.", "baseline.safety.")):
        return name in SAFETY_METRICS
    if name.startswith("slices."):
        parts = slice_gate_parts(name)
        return parts is not None and is_known_metric(parts[2])
    for prefix in _MODEL_PREFIXES:
        if name.startswith(prefix):
            base = name[len(prefix):]
            return is_known_metric(base) and base not in _TUNED_ONLY
    return is_known_metric(name)


def unknown_gate_metrics(policy: GatesConfig, *, primary_metric: str | None = None) -> list[str]:
    """Gate metric names no evaluation produces, for config-time checks (typos like `macro-f1`)."""
    names = [r.metric for r in policy.rules]
    if policy.require_significant_uplift and primary_metric:
        names.append(significance_rule(primary_metric).metric)
    return [n for n in dict.fromkeys(names) if not is_valid_gate_metric(n)]


def known_metrics_hint() -> str:
    """Every metric name a gate may use, in one line, for error messages."""
    return (f"known metrics: {', '.join(KNOWN_METRICS)}, top_<k>_accuracy, {', '.join(COST_METRICS)}, "
            f"{', '.join(PRIVACY_METRICS)}, "
            f"{', '.join(m for m in SAFETY_METRICS if m.startswith('safety.'))} (and baseline.safety.<rate>); "
            f"prefixed (m not in {', '.join(_TUNED_ONLY)}): {', '.join(p + '<m>' for p in _MODEL_PREFIXES)}; "
            f"per slice: {SLICE_GATE_FORMS}")


def _is_champion_rule(name: str) -> bool:
    """A rule on the champion comparison: passes while there is no champion, fails when it was not compared."""
    parts = slice_gate_parts(name)
    return name.startswith(_CHAMPION_PREFIXES) or (parts is not None and parts[1].startswith("worst_vs_champion"))


def _slice_ci(name: str, metrics: Mapping[str, float]) -> str:
    """" [CI low, high]" of a slice gate's value (`slices.max_gap.m` -> `slices.max_gap_ci_low.m`, ...), or ""."""
    parts = slice_gate_parts(name)
    if parts is None or parts[1].endswith(("_ci_low", "_ci_high")):
        return ""
    column, kind, metric = parts
    prefix = f"slices.{column}." if column else "slices."
    low, high = (metrics.get(f"{prefix}{kind}_ci_{end}.{metric}") for end in ("low", "high"))
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    return f" [CI {low:.4g}, {high:.4g}]"


@dataclass
class RuleResult:
    rule: str  # as written: "macro_f1 >= 0.8"
    metric: str
    op: str
    threshold: float
    value: float | None  # None: not measured
    passed: bool
    note: str = ""


@dataclass
class GateDecision:
    passed: bool
    rules: list[RuleResult] = field(default_factory=list)

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]

    @property
    def summary(self) -> str:
        """One line: how many rules passed, and which failed with their measured values."""
        if not self.rules:
            return "no gate rules configured"
        head = f"{len(self.rules) - len(self.failed)} of {len(self.rules)} gate rules passed"
        fails = "; ".join(f"{r.rule} ({r.note or 'not measured' if r.value is None else f'{r.value:.4g}'})"
                          for r in self.failed)
        return f"{head}; failed: {fails}" if fails else head

    def to_dict(self) -> dict:
        return {"passed": self.passed, "summary": self.summary, "failed": [r.rule for r in self.failed],
                "rules": [json_safe(asdict(r)) for r in self.rules]}

    def to_table(self) -> str:
        """A plain-text table, one line per rule, for terminals and logs."""
        head = ("", "rule", "value", "note")
        rows = [("PASS" if r.passed else "FAIL", r.rule, "-" if r.value is None else f"{r.value:.4f}", r.note)
                for r in self.rules]
        widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(4)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        lines = [fmt.format(*head).rstrip(), *(fmt.format(*row).rstrip() for row in rows)]
        verdict = f"gates {'PASSED' if self.passed else 'FAILED'}: {self.summary}"
        return "\n".join([*lines, verdict]) if self.rules else verdict


def _check(rule: GateRule, metrics: Mapping[str, float], has_champion: bool, champion_note: str) -> RuleResult:
    base = RuleResult(rule=str(rule), metric=rule.metric, op=rule.op, threshold=rule.value, value=None, passed=False)
    value = metrics.get(rule.metric)
    if value is None and _is_champion_rule(rule.metric):
        if not has_champion:
            base.passed, base.note = True, NO_CHAMPION_NOTE
            return base
        if champion_note:  # a champion exists but was not compared: never a free pass
            base.note = f"champion not compared: {champion_note}"
            return base
    if value is None and rule.metric.startswith("slices."):
        base.note = ("not measured: no slice column has two slices (vs the champion: one slice of rows it did not "
                     "train on) with evaluation.slice_min_rows rows; see the report's slices")
        return base
    if value is None:
        close = difflib.get_close_matches(rule.metric, list(metrics), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        base.note = f"not measured in this run; {hint}{known_metrics_hint()}"
        return base
    base.value = float(value)
    if math.isnan(base.value):
        base.note = "measured as NaN (empty split?)"
        return base
    base.passed = bool(_OPS[rule.op](base.value, rule.value))
    interval = _slice_ci(rule.metric, metrics) or _ci_text(rule.metric, metrics)
    if not base.passed:
        base.note = f"measured {base.value:.4g}{interval}; needs {rule.op} {rule.value:g}"
    elif interval:
        base.note = f"measured {base.value:.4g}{interval}"
    return base


def _ci_text(metric: str, metrics: Mapping[str, float]) -> str:
    """" (CI [low, high])" when the namespace has `<metric>_ci_low` / `_ci_high` beside it (safety.refusal_drop)."""
    low, high = metrics.get(f"{metric}_ci_low"), metrics.get(f"{metric}_ci_high")
    return "" if low is None or high is None else f" (CI [{low:.4g}, {high:.4g}])"


def gate(
    metrics: Mapping[str, float],
    policy: GatesConfig,
    *,
    primary_metric: str,
    has_champion: bool | None = None,
    champion_note: str = "",
) -> GateDecision:
    """Check every rule of `policy` against `metrics` (an `EvalReport.flat_metrics()`).

    Args:
        metrics: flat metric namespace (accuracy, uplift.macro_f1, vs_champion.accuracy, ...).
        policy: the config's gates.
        primary_metric: training.metric; `require_significant_uplift` checks the CI of `uplift.<it>` (see
            `significance_rule`).
        has_champion: whether a champion exists (`EvalReport.has_champion`). Pass it: when it is None it is
            guessed from the metrics, and a champion that was not compared would look like no champion.
        champion_note: why an existing champion was not compared (`EvalReport.champion_note`); shown on the
            champion rules, which fail.

    Returns:
        GateDecision with one RuleResult per rule, in config order, the significance rule last.
    """
    if has_champion is None:
        has_champion = any(k.startswith(("vs_champion.", "champion.")) for k in metrics)
    rules = list(policy.rules)
    if policy.require_significant_uplift:
        rules.append(significance_rule(primary_metric))
    results = [_check(rule, metrics, has_champion, champion_note) for rule in rules]
    if policy.require_significant_uplift:
        last, better = results[-1], "above" if rules[-1].op == ">" else "below"
        if last.passed:
            last.note = f"bootstrap CI of the uplift over the baseline lies {better} 0"
        elif last.value is not None and not math.isnan(last.value):
            last.note = f"uplift over the baseline is not significant (CI does not lie {better} 0)"
    return GateDecision(passed=all(r.passed for r in results), rules=results)
