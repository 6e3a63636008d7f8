"""Embeddings for retrieval: (query, positive[, negatives]) rows or scored pairs -> a sentence-transformers model
trained with in-batch negatives (MNRL, CachedMNRL) or CoSENT.

    task: embedding
    embedding: {loss: auto, matryoshka_dims: [384, 128]}
"""

from tunesmith.config import MethodKind
from tunesmith.config.family_rules import default_metric, no_slices, no_stratify
from tunesmith.contracts import DatasetHooks, DriftHooks, FeedbackHooks, ReviewHooks, lazy
from tunesmith.families import register
from tunesmith.families.common import (
    ENCODER_METHODS,
    check_number,
    distill_hooks,
    family,
    no_classes,
    text_mlflow,
)
from tunesmith.families.embedding import rows
from tunesmith.families.embedding.config import EmbeddingConfig
from tunesmith.serving.routes import EMBEDDINGS


def configure(cfg) -> None:
    """No class to stratify on; no task head; checkpoints on eval loss (retrieval metrics are gated, not tracked)."""
    no_stratify(cfg, "embedding")
    no_slices(cfg)
    if cfg.method.student().kind is MethodKind.HEAD:
        raise ValueError("method.kind: head trains a new task head; an embedding model has none (use full, lora or "
                         "freeze)")
    default_metric(cfg, "loss", ("loss",), "training.metric: embedding checkpoints are chosen on eval loss; set "
                   "training.metric: loss (gate mrr@10 / recall@10 / ndcg@10 in gates)")


def check_relevant_document(value, _labels, _logged=None) -> dict:
    """The document the user accepted (clicked, used) for the logged query, with an explicit relevance if graded."""
    if isinstance(value, str):
        value = {"document": value}
    document = value.get("document") if isinstance(value, dict) else None
    if not isinstance(document, str) or not document.strip():
        raise ValueError('give {"document": the document the user accepted for this query, "relevance": a number '
                         '>= 0, default 1}')
    extra = set(value) - {"document", "relevance", "negatives"}
    if extra:
        raise ValueError(f"unknown field(s) {', '.join(sorted(extra))}; give document, relevance and optionally "
                         "negatives")
    out = {"document": document, "relevance": check_number(value.get("relevance", 1.0), "relevance", minimum=0)}
    negatives = value.get("negatives") or []
    if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
        raise ValueError("negatives: a list of documents that are not relevant to the query (non-empty strings)")
    if len(negatives) > MAX_NEGATIVES:
        raise ValueError(f"negatives: at most {MAX_NEGATIVES} documents, got {len(negatives)}")
    negatives = [n for n in dict.fromkeys(negatives) if n != document]
    return {**out, "negatives": negatives} if negatives else out


MAX_NEGATIVES = 20


def accepted_pair(logged, _output, value) -> dict:
    """The query with the document the user accepted: a positive pair, with the documents a reviewer passed over
    as its hard negatives (a relevance of 0 trains nothing)."""
    if value["relevance"] <= 0:
        raise ValueError("relevance 0: not a positive pair")
    row = {"query": logged, "positive": value["document"]}
    return {**row, "negative": list(value["negatives"])} if value.get("negatives") else row


def _pair_row(query, positive, negatives, score) -> dict:
    row = {"query": str(query), "positive": str(positive)}
    if negatives is not None and len(negatives):
        row["negative"] = [str(n) for n in negatives]
    if score is not None and score == score:  # not NaN: a scored pair
        row["score"] = float(score)
    return row


def _dataset() -> DatasetHooks:
    from tunesmith.data.fingerprint import text_key

    return DatasetHooks(
        raw_rows=lambda frame: [_pair_row(*cells) for cells in zip(
            frame[rows.QUERY], frame[rows.POSITIVE], frame[rows.NEGATIVES], frame[rows.SCORE], strict=True)],
        key=lambda row: text_key(row["query"]) + "\x1f" + text_key(row["positive"]), labels=no_classes,
        data={"query_column": "query", "positive_column": "positive", "negative_column": "negative",
              "score_column": "score"}, recent_gates=("vs_champion.mrr@10 >= 0",),
        group=lambda row: text_key(row["query"]), conform=scored_like_parent)


def scored_like_parent(rows: list[dict], parent: list[dict]) -> list[dict]:
    """A model trained on scored pairs (CoSENT) retrains on scored pairs only: a document a user accepted for a
    query is a top match, so its pair gets the highest score of the parent's pairs; retrieval pairs stay as they are."""
    scores = [float(p["score"]) for p in parent if p.get("score") is not None]
    if not parent or len(scores) < len(parent):
        return rows
    top = max(scores)
    return [row if row.get("score") is not None else {**{k: v for k, v in row.items() if k != "negative"}, "score": top}
            for row in rows]  # a scored pair has no negatives


TASK = register(family(
    __name__, kind="embedding",
    summary="query <-> document embeddings (sentence-transformers, in-batch negatives or CoSENT)",
    configure=configure, section="embedding", section_model=EmbeddingConfig,
    check_rows=lambda table, cfg: rows.check_pair_rows(table, cfg.data), check_splits=rows.consistent_splits,
    bundle_columns=rows.PAIR_COLUMNS, redact=rows.redact_rows, train_metrics=("loss",),
    methods=(*ENCODER_METHODS, MethodKind.DISTILL), distill=distill_hooks("tunesmith.families.embedding.distill"),
    baseline_name="base model (retrieval)", routes=(EMBEDDINGS,), recognize_order=90,
    drift=DriftHooks(reference=lazy("tunesmith.families.embedding.drift:reference"),
                     accepts=lazy("tunesmith.families.embedding.drift:accepts"),
                     window=lazy("tunesmith.families.embedding.drift:window")),
    mlflow=text_mlflow(({"type": "array", "items": {"type": "double"}, "required": True},),
                       pipeline_task="feature-extraction", flavor="sentence_transformers"),
    review=ReviewHooks(widget="document", items=lazy("tunesmith.families.embedding.review:items"),
                       agree=lazy("tunesmith.families.embedding.review:agree"), agreement="same document"),
    feedback=FeedbackHooks(shape='the document accepted for the query: {"document": ..., "relevance": 1, '
                                 '"negatives": [documents not relevant] (optional)}',
                           check=check_relevant_document,
                           summary=lambda v: f"{v['relevance']:g}: {v['document']}"[:200], to_row=accepted_pair,
                           live=lazy("tunesmith.families.embedding.live:measure"), live_needs_model=True,
                           live_metrics=(("mrr@10", "higher"), ("recall@1", "higher"), ("recall@10", "higher"))),
    dataset=_dataset(),
))
