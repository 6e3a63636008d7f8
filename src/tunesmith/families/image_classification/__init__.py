"""Image classification: an image -> one of N labels, a CNN/ViT backbone with a classification head trained with CE.

    task: image-classification
    model: {base: builtin:efficientnet-lite0}        # or a hub id / dir of an AutoModelForImageClassification
    data: {path: photos/}                             # class per subfolder, or csv/jsonl/parquet with image + label
    image: {near_distance: 4, augment: {crop_scale: 0.6, flip: true, jitter: 0.1}}
"""

from tunesmith.config.family_rules import default_metric, no_slices
from tunesmith.data.images import IMAGE_COLUMNS
from tunesmith.families import register
from tunesmith.families.common import ENCODER_METHODS, family
from tunesmith.families.image_classification import rows
from tunesmith.families.image_classification.config import ImageConfig
from tunesmith.families.image_classification.serve import CLASSIFY_IMAGE, MLFLOW

METRICS = ("macro_f1", "accuracy", "weighted_f1", "loss")


def configure(cfg) -> None:
    """Checkpoints on eval macro-F1 unless training.metric says otherwise; no text-length slices (a row's text is
    its image's hash): slices are data.slice_columns or image_mode, when the config names them."""
    default_metric(cfg, "macro_f1", METRICS, "training.metric: {metric} is not an image-classification metric; use "
                   "macro_f1, accuracy, weighted_f1 or loss")
    no_slices(cfg)
    if "text_length" in cfg.evaluation.slices:
        raise ValueError("evaluation.slices: text_length slices texts; for images name data.slice_columns or "
                         "image_mode (the mode each image had before conversion to RGB)")


TASK = register(family(
    __name__, kind="image-classification", summary="an image -> one label (CNN/ViT backbone, classification head, CE)",
    configure=configure, section="image", section_model=ImageConfig,
    read_table=rows.read_table, check_rows=rows.check_rows, label_set=rows.label_set, labeled=True,
    label_column="label", label_checks=rows.label_checks, redact=rows.no_text_redaction, checks_on_full_text=True,
    bundle_columns=IMAGE_COLUMNS, train_metrics=METRICS, methods=ENCODER_METHODS,
    baseline_name="linear probe on frozen features", ships=("calibration.json",), routes=(CLASSIFY_IMAGE,),
    recognize_order=45, slice_metrics=("accuracy", "macro_f1"), mlflow=MLFLOW,
))
