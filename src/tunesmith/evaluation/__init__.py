"""tunesmith evaluation stage: metrics, calibration, significance, slices, baseline, gates and the report.

    report = evaluate(cfg, bundle, model_dir, champion_dir=champion, out_dir=run_dir)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=cfg.training.metric,
                    has_champion=report.has_champion, champion_note=report.champion_note)
    write_report(run_dir, config=cfg, data_report=..., train_result=..., eval_report=report,
                 decision=decision, lineage=...)

Names load lazily, so `from tunesmith.evaluation import gate` (config checks) does not import torch.
"""

from __future__ import annotations

import importlib
import sys
import types
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
    from tunesmith.evaluation.errors import EvalError
    from tunesmith.evaluation.evaluate import evaluate
    from tunesmith.evaluation.gates import (
        GateDecision,
        RuleResult,
        gate,
        is_valid_gate_metric,
        known_metrics_hint,
        significance_rule,
        unknown_gate_metrics,
    )
    from tunesmith.evaluation.metrics import (
        CONFUSION_METRICS,
        KNOWN_METRICS,
        classification_metrics,
        confusion_counts,
        confusion_scores,
        higher_is_better,
    )
    from tunesmith.evaluation.report import metrics_document, write_report
    from tunesmith.evaluation.scoring import load_classifier
    from tunesmith.evaluation.significance import confusion_metric, paired_bootstrap
    from tunesmith.evaluation.slices import slice_metrics, text_length_buckets

_EXPORTS = {
    "baseline": ("LinearProbe", "fit_probe", "linear_probe"),
    "calibration": ("calibration_summary", "expected_calibration_error", "fit_temperature", "reliability_bins",
                    "softmax"),
    "errors": ("EvalError",),
    "evaluate": ("evaluate",),
    "gates": ("GateDecision", "RuleResult", "gate", "is_valid_gate_metric", "known_metrics_hint", "significance_rule",
              "unknown_gate_metrics"),
    "metrics": ("CONFUSION_METRICS", "KNOWN_METRICS", "classification_metrics", "confusion_counts",
                "confusion_scores", "higher_is_better"),
    "report": ("metrics_document", "write_report"),
    "scoring": ("load_classifier",),
    "significance": ("confusion_metric", "paired_bootstrap"),
    "slices": ("slice_metrics", "text_length_buckets"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = [  # literal, so linters see the TYPE_CHECKING imports as exported; tests check it matches _EXPORTS
    "CONFUSION_METRICS", "KNOWN_METRICS", "EvalError", "GateDecision",
    "LinearProbe", "RuleResult", "calibration_summary", "classification_metrics",
    "confusion_counts", "confusion_metric", "confusion_scores", "evaluate", "expected_calibration_error",
    "fit_probe", "fit_temperature", "gate", "higher_is_better", "is_valid_gate_metric", "known_metrics_hint",
    "linear_probe", "load_classifier", "metrics_document", "paired_bootstrap", "reliability_bins",
    "significance_rule", "slice_metrics", "softmax", "text_length_buckets", "unknown_gate_metrics", "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tunesmith.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tunesmith.evaluation.{_WHERE[name]}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    _unshadow()
    return value


def _unshadow() -> None:
    """Rebind exports hidden by a submodule of the same name.

    Importing `tunesmith.evaluation.evaluate` (report.py does) binds the module as this package's `evaluate`
    attribute, which would hide the `evaluate` function from a later `from tunesmith.evaluation import evaluate`.
    """
    for name, module in _WHERE.items():
        if name == module and isinstance(globals().get(name), types.ModuleType):
            globals()[name] = getattr(sys.modules[f"{__name__}.{module}"], name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
