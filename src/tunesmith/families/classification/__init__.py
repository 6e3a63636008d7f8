"""Text classification (single label): a text -> one of N labels, a sequence-classification head trained with CE.

    task: classification    # the default
"""

from tunesmith.config import MethodKind
from tunesmith.contracts import DriftHooks, LoopHooks, PrivacyHooks, ReviewHooks, lazy
from tunesmith.families import register
from tunesmith.families.classification import rows
from tunesmith.families.common import (
    ENCODER_METHODS,
    LABEL_FEEDBACK,
    LABEL_FILTERS,
    distill_hooks,
    family,
    head_training_defaults,
    text_dataset,
    text_mlflow,
)
from tunesmith.serving.routes import CLASSIFY

SLICE_METRICS = ("accuracy", "macro_f1")  # reported per slice with CIs and gaps; what slices.* gates may name

TASK = register(family(
    __name__, kind="classification", summary="a text -> one label (sequence-classification head, cross-entropy)",
    check_rows=rows.check_label_rows, label_set=rows.label_set, labeled=True, label_column="label",
    label_checks=lazy("tunesmith.families.classification.checks:label_checks"),
    train_metrics=("macro_f1", "accuracy", "weighted_f1", "loss"), methods=(*ENCODER_METHODS, MethodKind.DISTILL),
    baseline_name="linear-probe baseline", ships=("calibration.json",), routes=(CLASSIFY,), recognize_order=40,
    slice_metrics=SLICE_METRICS,
    streams_rows=True,
    loop=LoopHooks(feedback="label", live_metrics=("accuracy", "macro_f1"),
                   drift_features=("predicted_label", "confidence"), review_field="label"),
    review=ReviewHooks(widget="label"),
    feedback=LABEL_FEEDBACK,
    dataset=text_dataset("label", classes="one", recent_gates=("vs_champion.macro_f1 >= 0",),
                         recent_eval=lazy("tunesmith.retrain.run:classifier_recent")),
    drift=DriftHooks(reference=lazy("tunesmith.monitoring.reference:build_reference"),
                     accepts=lazy("tunesmith.families.classification.drift:accepts"),
                     window=lazy("tunesmith.families.classification.drift:window")),
    distill=distill_hooks("tunesmith.families.classification.distill"),
    filters=LABEL_FILTERS,
    mlflow=text_mlflow(({"type": "string", "name": "label", "required": True}, {"type": "double", "name": "score", "required": True},
                        {"type": "map", "values": {"type": "double"}, "name": "scores", "required": True}),
                       pipeline_task="text-classification"),
    private_training=True,  # training.privacy: DP-SGD through the shared Trainer path
    privacy=PrivacyHooks(row_losses=lazy("tunesmith.families.classification.privacy:row_losses")),
    training_defaults=head_training_defaults(steps_per_class=40),  # few rows per class: more steps
    probe_eval=lazy("tunesmith.families.classification.evaluate:probe_eval"),
))
