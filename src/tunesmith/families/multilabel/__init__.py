"""Multi-label classification: a text -> any subset of N labels, one sigmoid per label trained with BCE, per-label
thresholds tuned on eval.

    task: multi-label       # or, as before, data.multi_label: true under task: classification
"""

from tunesmith.config.family_rules import default_metric, no_slices
from tunesmith.contracts import DriftHooks, FeedbackHooks, PrivacyHooks, ReviewHooks, lazy
from tunesmith.families import register
from tunesmith.families.common import (
    ENCODER_METHODS,
    LABEL_SET_FILTERS,
    check_label,
    family,
    head_training_defaults,
    text_dataset,
    text_label_row,
    text_mlflow,
)
from tunesmith.families.multilabel import rows
from tunesmith.serving.routes import CLASSIFY

METRICS = ("micro_f1", "macro_f1", "subset_accuracy", "loss")


def configure(cfg) -> None:
    """Label sets rarely repeat exactly: no stratified split; checkpoints on eval micro-F1; BCE weights, not copies."""
    if "stratify" not in cfg.data.split.model_fields_set:
        cfg.data.split.stratify = False
    default_metric(cfg, "micro_f1", METRICS, "training.metric: {metric} is not a multi-label metric; use micro_f1, "
                   "macro_f1, subset_accuracy or loss")
    if cfg.data.checks.imbalance.oversample:
        raise ValueError("data.checks.imbalance.oversample: repeating rows cannot balance overlapping label sets; "
                         "use training.class_weights: true (BCE pos_weight per label) for multi-label data")
    no_slices(cfg)  # per-slice tables are single-label metrics


def _claim(metric: str) -> str:
    return (f"training.metric: {metric} is a multi-label metric; set data.multi_label: true, or use macro_f1 / "
            "accuracy / weighted_f1 / loss")


def check_label_set(value, labels, _logged=None) -> list[str]:
    """The true label set: a non-empty list of the model's labels (one label alone is a set of one)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("give the true label set: a non-empty list of the model's labels")
    return sorted({check_label(v, labels) for v in value})


TASK = register(family(
    __name__, kind="multi-label", filters=LABEL_SET_FILTERS,
    summary="a text -> a set of labels (one sigmoid per label, BCE, thresholds tuned on eval)", configure=configure,
    check_rows=lambda table, cfg: rows.check_multilabel_rows(table, cfg.data), label_set=rows.labels_of,
    labeled=True, label_column=rows.LABELS, bundle_columns=(rows.LABELS,), label_distribution=rows.label_counts,
    label_checks=lazy("tunesmith.families.multilabel.checks:label_checks"),
    train_metrics=METRICS, methods=ENCODER_METHODS,
    metric_claims={m: _claim(m) for m in ("micro_f1", "subset_accuracy")},
    baseline_name="one-vs-rest probe, thresholds tuned on eval", ships=("thresholds.json",), routes=(CLASSIFY,),
    recognize_order=20,
    dataset=text_dataset(rows.LABELS, classes="set", recent_gates=("vs_champion.micro_f1 >= 0",)),
    drift=DriftHooks(reference=lazy("tunesmith.families.multilabel.drift:reference"), accepts=lazy("tunesmith.families.multilabel.drift:accepts"),
                     window=lazy("tunesmith.families.multilabel.drift:window")),
    review=ReviewHooks(widget="labels", items=lazy("tunesmith.families.multilabel.review:items"),
                       agree=lazy("tunesmith.families.common_review:jaccard"), agreement="Jaccard of the label sets"),
    feedback=FeedbackHooks(shape="the true label set, a list of the model's labels", check=check_label_set,
                           summary="|".join, live=lazy("tunesmith.families.multilabel.live:measure"),
                           live_metrics=(("micro_f1", "higher"), ("macro_f1", "higher"), ("hamming_loss", "lower")),
                           to_row=text_label_row),
    mlflow=text_mlflow(({"type": "string", "name": "label", "required": True}, {"type": "double", "name": "score", "required": True},
                        {"type": "array", "items": {"type": "string"}, "name": "labels", "required": True},
                        {"type": "map", "values": {"type": "double"}, "name": "scores", "required": True}),
                       pipeline_task="text-classification"),
    private_training=True,  # training.privacy: DP-SGD through the shared Trainer path
    privacy=PrivacyHooks(row_losses=lazy("tunesmith.families.multilabel.privacy:row_losses")),
    # one sigmoid per label learns from few positives: more steps per label, a larger step size
    training_defaults=head_training_defaults(steps_per_class=60, lr_scale=2.0, lr_why="x2 for per-label BCE"),
    probe_eval=lazy("tunesmith.families.multilabel.evaluate:probe_eval"),
))
