"""The checks every family's config gets, and the small rules families share when they set their defaults.

    check_for_family(cfg, families.get(cfg.task))   # Config runs this once the sections are parsed

Generic: a training.metric another family owns is refused with that family's note; distillation and QLoRA only
where the family supports them. Then the family's own `configure(cfg)` sets its defaults and checks its keys.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tunesmith.config.base import MethodKind
from tunesmith.config.privacy import check_privacy

if TYPE_CHECKING:
    from tunesmith.config.root import Config
    from tunesmith.contracts import Task


def check_for_family(cfg: Config, task: Task) -> None:
    """Refusals that depend on which family a config is for, then the family's own defaults and checks."""
    from tunesmith.families import all_families

    if cfg.data.multi_label and task.kind != "multi-label":
        raise ValueError(f"data.multi_label: multi-label rows are a classification setting; task is {task.kind} "
                         "(set task: classification)")
    metric = cfg.training.metric
    if metric not in task.train_metrics:
        claim = next((t.metric_claims[metric] for t in all_families() if metric in t.metric_claims), None)
        if claim:
            raise ValueError(claim)
    kind = MethodKind(cfg.method.kind)
    if kind is MethodKind.QLORA and kind not in task.methods:
        raise ValueError(f"method.kind: qlora is for causal-lm; use lora for {task.kind}")
    if kind is MethodKind.DISTILL and task.distill is None:
        supported = ", ".join(t.kind for t in all_families() if t.distill is not None)
        raise ValueError(f"method.kind: distill supports {supported}, not {task.kind}; train the student with full "
                         "or lora")
    check_slo_targets(cfg, task)
    check_privacy(cfg, task)
    check_private_training(cfg, task)
    check_safety(cfg, task)
    task.configure(cfg)
    check_slice_gates(cfg, task)


def check_private_training(cfg: Config, task: Task) -> None:
    """training.privacy (DP-SGD) only for the families and methods the Opacus integration trains."""
    from tunesmith.families import all_families

    if cfg.training.privacy is None:
        return
    if not task.private_training:
        supported = ", ".join(t.kind for t in all_families() if t.private_training)
        raise ValueError(f"training.privacy: DP-SGD supports {supported}, not {task.kind}; remove training.privacy")
    kind = MethodKind(cfg.method.kind)
    if kind in (MethodKind.DISTILL, MethodKind.QLORA):
        why = ("the teacher saw the private rows without DP, so its labels leak them" if kind is MethodKind.DISTILL
               else "Opacus has no per-example gradients for 4-bit layers")
        raise ValueError(f"method.kind: {kind.value} is not supported with training.privacy ({why}); use full, lora, "
                         "freeze or head")


def check_slo_targets(cfg: Config, task: Task) -> None:
    """monitoring.slo.targets names metrics the family measures live (a classifier's are slo.accuracy/macro_f1)."""
    from tunesmith.contracts import LABEL_LIVE

    targets = cfg.monitoring.slo.targets
    if not targets:
        return
    hooks = task.feedback
    if hooks is None or hooks.live is None:
        raise ValueError(f"monitoring.slo.targets: {task.kind} has no live quality yet; remove the targets")
    if hooks.live == LABEL_LIVE:
        raise ValueError(f"monitoring.slo.targets: a {task.kind} model's live objectives are monitoring.slo.accuracy "
                         "and monitoring.slo.macro_f1")
    measured = [m for m, _ in hooks.live_metrics]
    unknown = sorted(set(targets) - set(measured))
    if unknown:
        raise ValueError(f"monitoring.slo.targets: {', '.join(unknown)} is not measured for {task.kind}; it measures "
                         f"{', '.join(measured)}")


SAFETY_GATE_PREFIXES = ("safety.", "baseline.safety.")


def check_safety(cfg: Config, task: Task) -> None:
    """evaluation.safety and `safety.*` gates only for a family with safety hooks; such gates need the suites run."""
    from tunesmith.families import all_families

    gated = [r.metric for r in cfg.gates.rules if r.metric.startswith(SAFETY_GATE_PREFIXES)]
    if cfg.evaluation.safety is None and not gated:
        return
    if task.safety is None:
        supported = ", ".join(t.kind for t in all_families() if t.safety is not None) or "no family"
        where = "evaluation.safety" if cfg.evaluation.safety is not None else f"gates: {gated[0]}"
        raise ValueError(f"{where}: the safety suites ask chat models ({supported}), not {task.kind}; remove it")
    if cfg.evaluation.safety is None:
        raise ValueError(f"gates: {gated[0]} reads the safety suites; add evaluation.safety (e.g. `evaluation: "
                         "{safety: {suites: [builtin:default]}}`) or remove the rule")


def no_stratify(cfg: Config, kind: str, why: str = "have no class to stratify on") -> None:
    """Rows without one class each: the split is not stratified (and saying it should be is an error)."""
    if "stratify" not in cfg.data.split.model_fields_set:
        cfg.data.split.stratify = False
    elif cfg.data.split.stratify:
        raise ValueError(f"data.split.stratify: {kind} rows {why}; set it false")


def no_slices(cfg: Config) -> None:
    """Per-slice tables are single-label classification metrics: none unless the config asks."""
    if "slices" not in cfg.evaluation.model_fields_set:
        cfg.evaluation.slices = []


def default_metric(cfg: Config, metric: str, allowed: tuple[str, ...], refusal: str) -> None:
    """training.metric defaults to `metric`; a value outside `allowed` is refused with `refusal`."""
    if "metric" not in cfg.training.model_fields_set:
        cfg.training.metric = metric
    elif cfg.training.metric not in allowed:
        raise ValueError(refusal.format(metric=cfg.training.metric))


# Slice gates (tunesmith.evaluation.slices): slices.max_gap.<m>, slices.worst_vs_champion.<m>, their _ci_low /
# _ci_high, and the same per column: slices.<column>.max_gap.<m>.
SLICE_GATE_KINDS = ("max_gap", "max_gap_ci_low", "max_gap_ci_high", "worst_vs_champion", "worst_vs_champion_ci_low",
                    "worst_vs_champion_ci_high")
_SLICE_GATE_RE = re.compile(rf"^slices\.(?:(?P<column>.+)\.)?(?P<kind>{'|'.join(SLICE_GATE_KINDS)})\.(?P<metric>[\w@]+)$")
SLICE_GATE_FORMS = "slices.max_gap.<metric>, slices.worst_vs_champion.<metric> or slices.<column>.max_gap.<metric>"


def slice_gate_parts(name: str) -> tuple[str | None, str, str] | None:
    """(column or None, kind, metric) of a slice gate name like `slices.genre.max_gap.macro_f1`; None otherwise."""
    m = _SLICE_GATE_RE.match(name)
    return None if m is None else (m.group("column"), m.group("kind"), m.group("metric"))


def slice_gate_applies(name: str, columns: list[str]) -> bool:
    """Whether a gate on `name` can be measured when `columns` are sliced (any non-slice gate: True)."""
    parts = slice_gate_parts(name)
    return parts is None or (bool(columns) and (parts[0] is None or parts[0] in columns))


def check_slice_gates(cfg: Config, task: Task) -> None:
    """`slices.*` rules name a metric the family reports per slice and, per column, a column in evaluation.slices."""
    sliced = tuple(getattr(task, "slice_metrics", ()) or ())
    problems = []
    for rule in cfg.gates.rules:
        if not rule.metric.startswith("slices."):
            continue
        parts = slice_gate_parts(rule.metric)
        if parts is None:
            problems.append(f"gates: {rule}: not a slice gate; write {SLICE_GATE_FORMS}")
            continue
        column, _, metric = parts
        if not sliced:
            problems.append(f"gates: {rule}: {task.kind} reports no metric per slice; remove the rule")
        elif metric not in sliced:
            problems.append(f"gates: {rule}: {task.kind} reports {', '.join(sliced)} per slice, not {metric}")
        elif not cfg.evaluation.slices:
            problems.append(f"gates: {rule}: evaluation.slices is empty; name the columns to slice by "
                            "(e.g. [text_length, topic])")
        elif column is not None and column not in cfg.evaluation.slices:
            problems.append(f"gates: {rule}: {column!r} is not in evaluation.slices {cfg.evaluation.slices}; "
                            "add it there")
    if problems:
        raise ValueError("; ".join(problems))
