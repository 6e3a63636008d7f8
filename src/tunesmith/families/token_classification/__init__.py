"""Token classification (extraction): words with BIO tags, or text with character spans -> a token head; entity-level
P/R/F1 (seqeval strict).

    task: token-classification
    token_classification: {label_all_subtokens: false, invalid_tags: repair}
"""

from tunesmith.config import MethodKind
from tunesmith.config.family_rules import default_metric, no_slices, no_stratify
from tunesmith.contracts import DatasetHooks, DriftHooks, FeedbackHooks, FilterHooks, ReviewHooks, lazy
from tunesmith.families import register
from tunesmith.families.common import ENCODER_METHODS, distill_hooks, family, no_classes, text_mlflow
from tunesmith.families.token_classification import rows
from tunesmith.families.token_classification.config import TokenClassificationConfig
from tunesmith.serving.routes import EXTRACT

METRICS = ("f1", "macro_f1", "loss")
SERVE = "tunesmith.families.token_classification.serve"


def configure(cfg) -> None:
    """Rows are tag sequences, not one class: no stratified split; checkpoints on entity F1."""
    no_stratify(cfg, "token-classification", "have no single class to stratify on")
    no_slices(cfg)  # per-slice tables are sentence-classification metrics
    default_metric(cfg, "f1", METRICS, "training.metric: {metric} is not an extraction metric; token-classification "
                   "uses f1 (entity micro F1), macro_f1 (mean over entity types) or loss")
    if cfg.method.kind == MethodKind.DISTILL and cfg.method.distill.unlabeled:
        raise ValueError("method.distill.unlabeled: teacher-labelled rows are for classification and regression; "
                         "for token-classification the teacher's per-token distributions on the labelled rows are "
                         "what the student learns")


# One entity of /v1/extract, as the MLflow signature describes it.
ENTITY = {"start": {"type": "long"}, "end": {"type": "long"}, "label": {"type": "string"},
          "score": {"type": "double"}, "text": {"type": "string"}}


def check_spans(value, labels, logged=None) -> list[dict]:
    """The corrected entities of the logged text: non-overlapping {start, end, label} character spans inside it,
    labels among the model's entity types ([] when the text has none)."""
    if not isinstance(value, list | tuple):
        raise ValueError("give the corrected entities: a list of {start, end, label} character spans ([] for none)")
    text = logged if isinstance(logged, str) else None
    types = sorted({tag.split("-", 1)[1] for tag in labels or () if "-" in tag})
    spans = []
    for i, span in enumerate(value):
        start, end, label = (span.get(k) for k in ("start", "end", "label")) if isinstance(span, dict) else (None,) * 3
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)) or not 0 <= start < end:
            raise ValueError(f"entity {i}: give integer character offsets with 0 <= start < end")
        if text is not None and end > len(text):
            raise ValueError(f"entity {i}: end {end} is past the text's {len(text)} characters{_redacted(text)}")
        said = span.get("text")
        if text is not None and isinstance(said, str) and text[start:end] != said:
            raise ValueError(f"entity {i}: the logged text has {text[start:end]!r} at {start}-{end}, not {said!r}"
                             f"{_redacted(text)}")
        if not isinstance(label, str) or (types and label not in types):
            raise ValueError(f"entity {i}: label {label!r} is not one of the model's entity types ({', '.join(types)})")
        spans.append({"start": start, "end": end, "label": label, **({"text": text[start:end]} if text else {})})
    spans.sort(key=lambda s: (s["start"], s["end"]))
    for a, b in zip(spans, spans[1:], strict=False):
        if b["start"] < a["end"]:
            raise ValueError(f"entities {a['start']}-{a['end']} and {b['start']}-{b['end']} overlap")
    return spans


def _redacted(text: str) -> str:
    """A hint when the logged text is not what the caller sent: personal data in it was replaced at logging."""
    import re

    found = sorted(set(re.findall(r"<[A-Z_]+>", text)))
    if not found:
        return ""
    return (f" (the logged text is redacted: {', '.join(found)} replaced personal data, serving.predictions."
            f"redact_pii; give offsets into the logged text, as the review page does, or turn redaction off for a "
            f"model whose entities are such data)")


def spans_to_tags(logged, _output, spans) -> dict:
    """The corrected spans as the word / IOB2-tag row training reads (a span must cover whole words)."""
    from types import SimpleNamespace

    if not isinstance(logged, str):
        raise ValueError("the logged input is not a text")
    columns = SimpleNamespace(text_column="text", spans_column="spans")
    words, tags, _, _ = rows.spans_row({"text": logged, "spans": spans}, columns, None)
    return {"tokens": words, "tags": tags}


def _dataset() -> DatasetHooks:
    from tunesmith.data.fingerprint import text_key

    return DatasetHooks(
        raw_rows=lambda frame: [{"tokens": list(map(str, w)), "tags": list(map(str, t))}
                                for w, t in zip(frame[rows.TOKENS], frame[rows.TAGS], strict=True)],
        key=lambda row: text_key(" ".join(row["tokens"])), labels=no_classes,
        data={"tokens_column": "tokens", "tags_column": "tags"}, recent_gates=("vs_champion.f1 >= 0",))


TASK = register(family(
    __name__, kind="token-classification", summary="words -> BIO tags, entities as spans (token head, entity-level F1)",
    configure=configure, section="token_classification", section_model=TokenClassificationConfig,
    read_table=lambda key, path, cfg: rows.load_token_table(key, path, cfg.data), check_rows=rows.check_token_rows,
    label_set=rows.label_set, bundle_columns=rows.TOKEN_COLUMNS, label_distribution=rows.entity_counts,
    redact=rows.redact_rows, train_metrics=METRICS, methods=(*ENCODER_METHODS, MethodKind.DISTILL),
    distill=distill_hooks("tunesmith.families.token_classification.distill"),
    metric_claims={"f1": "training.metric: f1 is the entity-level F1 of token-classification; use macro_f1 or "
                         "accuracy for classification"},
    baseline_name="word probe on the frozen base", routes=(EXTRACT,), recognize_order=60,
    drift=DriftHooks(reference=lazy("tunesmith.families.token_classification.drift:reference"), accepts=lazy("tunesmith.families.token_classification.drift:accepts"),
                     window=lazy("tunesmith.families.token_classification.drift:window")),
    mlflow=text_mlflow(({"type": "array", "items": {"type": "object", "properties": ENTITY}, "required": True},),
                       pipeline_task="token-classification"),
    review=ReviewHooks(widget="spans", items=lazy("tunesmith.families.token_classification.review:items"),
                       agree=lazy("tunesmith.families.token_classification.review:agree"), agreement="span F1"),
    feedback=FeedbackHooks(shape="the corrected entities, a list of {start, end, label} character spans",
                           check=check_spans, summary=lambda spans: f"{len(spans)} entities",
                           live=lazy("tunesmith.families.token_classification.live:measure"),
                           live_metrics=(("entity_f1", "higher"), ("precision", "higher"), ("recall", "higher")),
                           to_row=spans_to_tags),
    dataset=_dataset(),
    filters=FilterHooks(confidence=lazy(f"{SERVE}:confidence"), abstain=lazy(f"{SERVE}:abstain")),
))
