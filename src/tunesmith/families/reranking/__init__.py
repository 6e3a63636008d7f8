"""Reranking: (query, document, relevance) rows -> a cross-encoder that scores each pair, ranked per query.

    task: reranking
"""

from tunesmith.config import MethodKind
from tunesmith.config.family_rules import default_metric, no_slices, no_stratify
from tunesmith.contracts import DatasetHooks, DriftHooks, FeedbackHooks, MlflowModel, ReviewHooks, lazy
from tunesmith.families import register
from tunesmith.families.common import check_number, distill_hooks, family, no_classes, row_value
from tunesmith.families.reranking import rows
from tunesmith.serving.routes import RERANK

METHODS = (MethodKind.FULL, MethodKind.FREEZE, MethodKind.LORA)


def configure(cfg) -> None:
    """Rows are grouped by query (no class to stratify on); checkpoints on eval loss (BCE)."""
    no_stratify(cfg, "reranking")
    student = cfg.method.student()
    if cfg.method.kind not in (*METHODS, MethodKind.DISTILL) or student.kind not in METHODS:
        raise ValueError(f"method.kind: {student.kind.value} is not supported for reranking yet; use full, freeze or "
                         "lora (the cross-encoder's classifier head always trains), or distill with one of them")
    if cfg.method.kind == MethodKind.DISTILL and cfg.method.distill.unlabeled:
        raise ValueError("method.distill.unlabeled: teacher-labelled rows are for classification and regression; a "
                         "reranker learns from the teacher's relevance of its training pairs")
    default_metric(cfg, "loss", ("loss",), "training.metric: reranker checkpoints are chosen on eval loss; set "
                   "training.metric: loss (gate mrr@10 / ndcg@10 in gates)")
    no_slices(cfg)
    if "near" not in cfg.data.checks.leakage.model_fields_set:
        # candidate documents recur across queries by design (one corpus): near-duplicate (query, document) texts in
        # two splits are not leakage; the query-keyed split already keeps each query in one split
        cfg.data.checks.leakage.near = False



def pair_items(_served, rows: list[dict], _params: dict) -> list[tuple[str, str]]:
    """Each row's (query, document): the pairs /v1/rerank scores."""
    return [(row_value(rows, i, "query"), row_value(rows, i, "document")) for i in range(len(rows))]


# A frame of (query, document) rows -> each pair's relevance, as /v1/rerank scores them (sigmoid of the logit).
# The cross-encoder loads in MLflow as a transformers text-classification pipeline ({"text", "text_pair"} inputs):
# mlflow.sentence_transformers loads bi-encoders (SentenceTransformer) only.
RERANK_MLFLOW = MlflowModel(
    inputs=({"type": "string", "name": "query", "required": True},
            {"type": "string", "name": "document", "required": True}),
    outputs=({"type": "double", "required": True},),
    example={"query": ["how do I reset my password", "how do I reset my password"],
             "document": ["Open Settings, then Security, then Reset password.", "Our office opens at nine."]},
    items=pair_items, flavor="transformers", pipeline_task="text-classification")

def _dataset() -> DatasetHooks:
    from tunesmith.data.fingerprint import text_key

    return DatasetHooks(
        raw_rows=lambda frame: [{"query": str(q), "document": str(d), "relevance": float(r)} for q, d, r in zip(
            frame[rows.QUERY], frame[rows.DOCUMENT], frame[rows.RELEVANCE], strict=True)],
        key=lambda row: text_key(row["query"]) + "\x1f" + text_key(row["document"]), labels=no_classes,
        data={"query_column": "query", "document_column": "document", "relevance_column": "relevance"},
        recent_gates=("vs_champion.mrr@10 >= 0",), group=lambda row: text_key(row["query"]))


TASK = register(family(
    __name__, kind="reranking", summary="(query, document) -> relevance (cross-encoder, BCE), ranked per query",
    configure=configure,
    check_rows=lambda table, cfg: rows.check_relevance_rows(table, cfg.data), check_splits=rows.group_warnings,
    bundle_columns=rows.RELEVANCE_COLUMNS, redact=rows.redact_rows, checks_on_full_text=True,
    train_metrics=("loss",), methods=(*METHODS, MethodKind.DISTILL),
    distill=distill_hooks("tunesmith.families.reranking.distill"),
    baseline_name="base model as a bi-encoder (cosine)", routes=(RERANK,), recognize_order=10,
    mlflow=RERANK_MLFLOW,
    dataset=_dataset(),
    drift=DriftHooks(reference=lazy("tunesmith.families.reranking.drift:reference"), accepts=lazy("tunesmith.families.reranking.drift:accepts"),
                     window=lazy("tunesmith.families.reranking.drift:window")),
    review=ReviewHooks(widget="grade", items=lazy("tunesmith.families.reranking.review:items"),
                       agree=lazy("tunesmith.families.common_review:same"), agreement="same grade"),
    feedback=FeedbackHooks(shape="the relevance of the returned document to the query, a number >= 0 (graded, "
                                 "or 1/0, true/false)",
                           check=lambda value, _labels, _logged=None: check_number(value, "relevance", minimum=0),
                           summary=lambda value: f"{value:g}", live=lazy("tunesmith.families.reranking.live:measure"),
                           live_metrics=(("mrr@10", "higher"), ("ndcg@10", "higher")),
                           to_row=lambda logged, _out, relevance: {"query": logged["query"],
                                                                   "document": logged["document"],
                                                                   "relevance": relevance}),
))
