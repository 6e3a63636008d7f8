"""Reranking: (query, document, relevance) rows -> a cross-encoder that scores each pair, ranked per query.

    task: reranking
"""

from tunesmith.config import MethodKind
from tunesmith.config.family_rules import default_metric, no_slices, no_stratify
from tunesmith.families import register
from tunesmith.families.common import family
from tunesmith.families.reranking import rows
from tunesmith.serving.routes import RERANK

METHODS = (MethodKind.FULL, MethodKind.FREEZE, MethodKind.LORA)


def configure(cfg) -> None:
    """Rows are grouped by query (no class to stratify on); checkpoints on eval loss (BCE)."""
    no_stratify(cfg, "reranking")
    if cfg.method.kind not in METHODS:
        raise ValueError(f"method.kind: {cfg.method.kind.value} is not supported for reranking yet; use full, freeze or "
                         "lora (the cross-encoder's classifier head always trains)")
    default_metric(cfg, "loss", ("loss",), "training.metric: reranker checkpoints are chosen on eval loss; set "
                   "training.metric: loss (gate mrr@10 / ndcg@10 in gates)")
    no_slices(cfg)
    if "near" not in cfg.data.checks.leakage.model_fields_set:
        # candidate documents recur across queries by design (one corpus): near-duplicate (query, document) texts in
        # two splits are not leakage; the query-keyed split already keeps each query in one split
        cfg.data.checks.leakage.near = False


TASK = register(family(
    __name__, kind="reranking", summary="(query, document) -> relevance (cross-encoder, BCE), ranked per query",
    configure=configure,
    check_rows=lambda table, cfg: rows.check_relevance_rows(table, cfg.data), check_splits=rows.group_warnings,
    bundle_columns=rows.RELEVANCE_COLUMNS, redact=rows.redact_rows, checks_on_full_text=True,
    train_metrics=("loss",), methods=METHODS,
    baseline_name="base model as a bi-encoder (cosine)", routes=(RERANK,), recognize_order=10,
))
