"""tunesmith evaluation stage: metrics, calibration, significance, slices, baseline, gates and the report.

    report = evaluate(cfg, bundle, model_dir, champion_dir=champion)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=cfg.training.metric)
    write_report(run_dir, config=cfg, data_report=..., train_result=..., eval_report=report,
                 decision=decision, lineage=...)

Names load lazily, so `from tunesmith.evaluation import gate` (config checks) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from tunesmith.evaluation.baseline import LinearProbe, fit_probe, linear_probe
    from tunesmith.evaluation.calibration import (
        calibration_summary,
        expected_calibration_error,
        fit_temperature,
        reliability_bins,
        softmax,
    )
    from tunesmith.evaluation.evaluate import EvalReport, evaluate, load_classifier
    from tunesmith.evaluation.gates import (
        GateDecision,
        RuleResult,
        gate,
        is_valid_gate_metric,
        unknown_gate_metrics,
    )
    from tunesmith.evaluation.metrics import (
        CONFUSION_METRICS,
        KNOWN_METRICS,
        classification_metrics,
        confusion_counts,
        confusion_scores,
    )
    from tunesmith.evaluation.report import metrics_document, write_report
    from tunesmith.evaluation.significance import confusion_metric, paired_bootstrap
    from tunesmith.evaluation.slices import slice_metrics, text_length_buckets

_EXPORTS = {
    "baseline": ("LinearProbe", "fit_probe", "linear_probe"),
    "calibration": ("calibration_summary", "expected_calibration_error", "fit_temperature", "reliability_bins",
                    "softmax"),
    "evaluate": ("EvalReport", "evaluate", "load_classifier"),
    "gates": ("GateDecision", "RuleResult", "gate", "is_valid_gate_metric", "unknown_gate_metrics"),
    "metrics": ("CONFUSION_METRICS", "KNOWN_METRICS", "classification_metrics", "confusion_counts",
                "confusion_scores"),
    "report": ("metrics_document", "write_report"),
    "significance": ("confusion_metric", "paired_bootstrap"),
    "slices": ("slice_metrics", "text_length_buckets"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [  # literal, so linters see the TYPE_CHECKING imports as exported; tests check it matches _EXPORTS
    "CONFUSION_METRICS", "KNOWN_METRICS", "EvalReport", "GateDecision", "LinearProbe", "RuleResult",
    "calibration_summary", "classification_metrics", "confusion_counts", "confusion_metric", "confusion_scores",
    "evaluate", "expected_calibration_error", "fit_probe", "fit_temperature", "gate", "is_valid_gate_metric",
    "linear_probe", "load_classifier", "metrics_document", "paired_bootstrap", "reliability_bins",
    "slice_metrics", "softmax", "text_length_buckets", "unknown_gate_metrics", "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tunesmith.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tunesmith.evaluation.{_WHERE[name]}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
