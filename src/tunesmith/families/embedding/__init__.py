"""Embeddings for retrieval: (query, positive[, negatives]) rows or scored pairs -> a sentence-transformers model
trained with in-batch negatives (MNRL, CachedMNRL) or CoSENT.

    task: embedding
    embedding: {loss: auto, matryoshka_dims: [384, 128]}
"""

from tunesmith.config import MethodKind
from tunesmith.config.family_rules import default_metric, no_slices, no_stratify
from tunesmith.families import register
from tunesmith.families.common import ENCODER_METHODS, family, text_mlflow
from tunesmith.families.embedding import rows
from tunesmith.families.embedding.config import EmbeddingConfig
from tunesmith.serving.routes import EMBEDDINGS


def configure(cfg) -> None:
    """No class to stratify on; no task head; checkpoints on eval loss (retrieval metrics are gated, not tracked)."""
    no_stratify(cfg, "embedding")
    no_slices(cfg)
    if cfg.method.kind is MethodKind.HEAD:
        raise ValueError("method.kind: head trains a new task head; an embedding model has none (use full, lora or "
                         "freeze)")
    default_metric(cfg, "loss", ("loss",), "training.metric: embedding checkpoints are chosen on eval loss; set "
                   "training.metric: loss (gate mrr@10 / recall@10 / ndcg@10 in gates)")


TASK = register(family(
    __name__, kind="embedding",
    summary="query <-> document embeddings (sentence-transformers, in-batch negatives or CoSENT)",
    configure=configure, section="embedding", section_model=EmbeddingConfig,
    check_rows=lambda table, cfg: rows.check_pair_rows(table, cfg.data), check_splits=rows.consistent_splits,
    bundle_columns=rows.PAIR_COLUMNS, redact=rows.redact_rows, train_metrics=("loss",), methods=ENCODER_METHODS,
    baseline_name="base model (retrieval)", routes=(EMBEDDINGS,), recognize_order=90,
    mlflow=text_mlflow(({"type": "array", "items": {"type": "double"}, "required": True},),
                       pipeline_task="feature-extraction", flavor="sentence_transformers"),
))
