"""Token classification (extraction): words with BIO tags, or text with character spans -> a token head; entity-level
P/R/F1 (seqeval strict).

    task: token-classification
    token_classification: {label_all_subtokens: false, invalid_tags: repair}
"""

from tunesmith.config.family_rules import default_metric, no_slices, no_stratify
from tunesmith.families import register
from tunesmith.families.common import ENCODER_METHODS, family, text_mlflow
from tunesmith.families.token_classification import rows
from tunesmith.families.token_classification.config import TokenClassificationConfig
from tunesmith.serving.routes import EXTRACT

METRICS = ("f1", "macro_f1", "loss")


def configure(cfg) -> None:
    """Rows are tag sequences, not one class: no stratified split; checkpoints on entity F1."""
    no_stratify(cfg, "token-classification", "have no single class to stratify on")
    no_slices(cfg)  # per-slice tables are sentence-classification metrics
    default_metric(cfg, "f1", METRICS, "training.metric: {metric} is not an extraction metric; token-classification "
                   "uses f1 (entity micro F1), macro_f1 (mean over entity types) or loss")


# One entity of /v1/extract, as the MLflow signature describes it.
ENTITY = {"start": {"type": "long"}, "end": {"type": "long"}, "label": {"type": "string"},
          "score": {"type": "double"}, "text": {"type": "string"}}

TASK = register(family(
    __name__, kind="token-classification", summary="words -> BIO tags, entities as spans (token head, entity-level F1)",
    configure=configure, section="token_classification", section_model=TokenClassificationConfig,
    read_table=lambda key, path, cfg: rows.load_token_table(key, path, cfg.data), check_rows=rows.check_token_rows,
    label_set=rows.label_set, bundle_columns=rows.TOKEN_COLUMNS, label_distribution=rows.entity_counts,
    redact=rows.redact_rows, train_metrics=METRICS, methods=ENCODER_METHODS,
    metric_claims={"f1": "training.metric: f1 is the entity-level F1 of token-classification; use macro_f1 or "
                         "accuracy for classification"},
    baseline_name="word probe on the frozen base", routes=(EXTRACT,), recognize_order=60,
    mlflow=text_mlflow(({"type": "array", "items": {"type": "object", "properties": ENTITY}, "required": True},),
                       pipeline_task="token-classification"),
))
