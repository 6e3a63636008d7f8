"""Regression: a text -> a number, a 1-output head trained with MSE or Huber on the standardized target.

    task: regression
    regression: {loss: huber, huber_delta: 1.0}
"""

from tunesmith.config import MethodKind
from tunesmith.config.family_rules import default_metric, no_slices, no_stratify
from tunesmith.contracts import DriftHooks, FeedbackHooks, PrivacyHooks, ReviewHooks, lazy
from tunesmith.families import register
from tunesmith.families.common import (
    ENCODER_METHODS,
    check_number,
    distill_hooks,
    family,
    head_training_defaults,
    text_dataset,
    text_label_row,
    text_mlflow,
)
from tunesmith.families.regression import rows
from tunesmith.families.regression.config import RegressionConfig
from tunesmith.serving.routes import SCORE

METRICS = ("rmse", "mae", "spearman", "pearson", "loss")


def configure(cfg) -> None:
    """No class to stratify on; checkpoints on eval RMSE; no per-slice classification tables."""
    no_stratify(cfg, "regression")
    no_slices(cfg)
    default_metric(cfg, "rmse", METRICS, "training.metric: {metric} is a classification metric; regression uses rmse, "
                   "mae, spearman, pearson or loss")


TASK = register(family(
    __name__, kind="regression", summary="a text -> a number (1-output head, MSE or Huber)",
    configure=configure, section="regression", section_model=RegressionConfig,
    check_rows=lambda table, cfg: rows.check_target_rows(table, cfg.data), bundle_columns=(rows.TARGET,),
    train_metrics=METRICS, methods=(*ENCODER_METHODS, MethodKind.DISTILL),
    distill=distill_hooks("tunesmith.families.regression.distill"),
    metric_claims={m: f"training.metric: {m} is a regression metric" for m in ("rmse", "mae", "spearman", "pearson")},
    baseline_name="ridge probe", routes=(SCORE,), recognize_order=30,
    dataset=text_dataset(rows.TARGET, classes=None, recent_gates=("vs_champion.rmse <= 0",)),
    drift=DriftHooks(reference=lazy("tunesmith.families.regression.drift:reference"), accepts=lazy("tunesmith.families.regression.drift:accepts"),
                     window=lazy("tunesmith.families.regression.drift:window")),
    review=ReviewHooks(widget="value", items=lazy("tunesmith.families.regression.review:items"),
                       agree=lazy("tunesmith.families.regression.review:agree"), agreement="1 - |a - b| / (|a| + |b|)"),
    feedback=FeedbackHooks(shape="the true value, a number", check=lambda value, _labels, _logged=None:
                           check_number(value, "the true value"), summary=lambda value: f"{value:g}",
                           live=lazy("tunesmith.families.regression.live:measure"),
                           live_metrics=(("mae", "lower"), ("rmse", "lower"), ("spearman", "higher")), to_row=text_label_row),
    mlflow=text_mlflow(({"type": "double", "required": True},), pipeline_task="text-classification"),
    privacy=PrivacyHooks(row_losses=lazy("tunesmith.families.regression.privacy:row_losses")),
    training_defaults=head_training_defaults(),  # no classes: the schedule and the method's rate
    probe_eval=lazy("tunesmith.families.regression.evaluate:probe_eval"),
))
