"""Feedback on served predictions, stored next to the prediction log (same database, table `feedback`).

    record_feedback(url, model="sentiment", request_id=rid, label="pos", labels=["neg", "pos"])  # POST /v1/feedback
    record_feedback(url, model="support", request_id=rid, value={"thumbs": "down"}, hooks=get("causal-lm").feedback)
    result = import_feedback(url, "labels.jsonl", model="sentiment", labels=["neg", "pos"])  # tunesmith feedback import
    rows = feedback_labels(url, "sentiment")   # a label source for retrain: {text, label, source, labeled_by, ...}

What feedback is depends on the family (`tunesmith.contracts.FeedbackHooks`): a label, a label set, a value,
corrected spans, an accepted document, a relevance, thumbs with an optional corrected answer. The checked value is
stored as JSON (`value`) with a short summary (`label`: the true label for classification). Feedback is tied to a
logged prediction by request id (and `index`, the item's position in a batched request; a chat completion's `id`
works too), or stands alone with a new text. Each row has a key (request id/index or text, value, labeler), so
importing the same file twice adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tunesmith.monitoring.predictions import db_engine, default_url, item_positions, log_meta, predictions

feedback = sa.Table(
    "feedback", log_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),  # idempotent imports
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),  # when tunesmith received it
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=True, index=True),
    sa.Column("idx", sa.Integer, nullable=False, default=0),
    sa.Column("text", sa.Text, nullable=False),  # the logged input (as logged: redacted when the log redacts)
    sa.Column("label", sa.String(200), nullable=False),  # the family's summary of `value` (classification: the label)
    sa.Column("value", sa.Text, nullable=True),  # the checked feedback as JSON (null in rows stored before it existed)
    sa.Column("source", sa.String(32), nullable=False),  # feedback (API) / import (file)
    sa.Column("labeled_by", sa.String(200), nullable=True),
    sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
)


class FeedbackError(ValueError):
    """A label that cannot be stored; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 422):
        self.status = status
        super().__init__(message)


@dataclass
class ImportResult:
    imported: int = 0
    already_present: int = 0
    bad: list[str] = field(default_factory=list)  # "file:line: reason"

    def to_dict(self) -> dict:
        return {"imported": self.imported, "already_present": self.already_present, "bad": len(self.bad),
                "bad_rows": self.bad}


def _key(model: str, request_id: str | None, idx: int, text: str, value: str, labeled_by: str | None) -> str:
    ident = f"{request_id}#{idx}" if request_id else f"text:{text}"
    return hashlib.sha256(json.dumps([model, ident, value, labeled_by or ""]).encode()).hexdigest()


COMPLETION_PREFIXES = ("chatcmpl-", "cmpl-")  # the OpenAI-style `id` of a chat or text completion: the request id


def logged_value(conn, model: str, request_id: str, idx: int = 0) -> tuple[str, Any] | None:
    """(request id, the decoded idx-th input) the served (non-shadow) model answered for `request_id`, or None.
    A completion's `id` (chatcmpl-<request id>) finds its request too."""
    candidates = [request_id] + [request_id[len(p):] for p in COMPLETION_PREFIXES if request_id.startswith(p)]
    for rid in candidates:
        p = predictions
        rows = conn.execute(sa.select(p.c.input, p.c.request_id, p.c.role, p.c.idx).where(
            p.c.model == model, p.c.request_id == rid, p.c.role != "shadow").order_by(p.c.id)).fetchall()
        for row, position in zip(rows, item_positions(rows), strict=True):
            if position == idx:
                return rid, json.loads(row.input)
    return None


def _time(value: Any, where: str) -> datetime:
    if value is None or value == "":
        return datetime.now(timezone.utc)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise FeedbackError(f"{where}labeled_at {value!r} is not an ISO-8601 time (e.g. 2026-11-22T08:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def label_hooks():
    """Classification's feedback (the true label): what a caller that names no family gets."""
    from tunesmith.families import get

    return get("classification").feedback


def _checked(hooks, value: Any, labels: list[str] | None, logged: Any, where: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FeedbackError(f"{where}the feedback is missing; give {hooks.shape}")
    try:
        return hooks.check(value, labels, logged)
    except ValueError as exc:
        raise FeedbackError(f"{where}{exc}") from None


def _row(conn, *, model: str, request_id: str | None, idx: int, text: str | None, value: Any,
         labels: list[str] | None, labeled_by: str | None, labeled_at: Any, source: str, hooks=None,
         where: str = "") -> dict:
    hooks = hooks or label_hooks()
    logged = None
    if request_id:
        found = logged_value(conn, model, str(request_id), idx)
        if found is None:
            raise FeedbackError(f"{where}no logged prediction of {model} for request id {request_id!r}"
                                + (f" (index {idx})" if idx else "")
                                + "; only logged requests take feedback (check serving.predictions.sample_rate)", 404)
        request_id, logged = found
        text = logged if isinstance(logged, str) else json.dumps(logged)
    elif not text or not str(text).strip():
        raise FeedbackError(f"{where}give a request_id (of a served prediction) or a text")
    else:
        logged = str(text)
    stored = _checked(hooks, value, labels, logged, where)
    encoded = json.dumps(stored, sort_keys=True)
    return {"key": _key(model, request_id, idx, str(text), encoded, labeled_by), "ts": datetime.now(timezone.utc),
            "model": model, "request_id": request_id or None, "idx": idx, "text": str(text),
            "label": str(hooks.summary(stored))[:200], "value": encoded, "stored": stored, "source": source,
            "labeled_by": labeled_by, "labeled_at": _time(labeled_at, where)}


def _insert(conn, row: dict) -> bool:
    """Insert unless a row with the same key exists; returns whether it was new."""
    if conn.execute(sa.select(feedback.c.id).where(feedback.c.key == row["key"])).first() is not None:
        return False
    conn.execute(feedback.insert(), [{k: v for k, v in row.items() if k != "stored"}])
    return True


def record_feedback(url: str | None, *, model: str, label: Any = None, value: Any = None, request_id: str | None = None,
                    index: int = 0, text: str | None = None, labels: list[str] | None = None,
                    labeled_by: str | None = None, labeled_at: Any = None, source: str = "feedback",
                    hooks=None) -> dict:
    """Store one piece of feedback (`value`, or `label` for a label); returns the stored row (`stored`: the checked
    value, `new`: whether it was not there yet). `hooks` is the model's family's FeedbackHooks (default: a label).
    Raises FeedbackError (404 unknown request id, 422 a value the family does not accept)."""
    engine = db_engine(url or default_url())
    try:
        with engine.begin() as conn:
            row = _row(conn, model=model, request_id=request_id, idx=index, text=text,
                       value=value if value is not None else label, labels=labels, labeled_by=labeled_by,
                       labeled_at=labeled_at, source=source, hooks=hooks)
            row["new"] = _insert(conn, row)
    finally:
        engine.dispose()
    return row


def import_feedback(url: str | None, path: str | Path, *, model: str, labels: list[str] | None = None,
                    labeled_by: str | None = None, hooks=None) -> ImportResult:
    """Import a jsonl/csv of feedback (columns: request_id [index] value|label, or text value|label; optional
    labeled_by, labeled_at; a CSV cell holding JSON is read as JSON). Good rows are stored; every bad one is reported
    as file:line: reason, nothing is dropped silently."""
    from tunesmith.data.load import load_table
    from tunesmith.data.schema import ORDER, SOURCE

    table = load_table("feedback file", Path(path))
    result = ImportResult(bad=[f"{b.source}: {b.detail}" for b in table.bad])
    engine = db_engine(url or default_url())
    try:
        with engine.begin() as conn:
            for raw in table.frame.to_dict("records"):
                where = f"{raw.get(SOURCE)}: "
                values = {k: _clean(v) for k, v in raw.items() if k not in (SOURCE, ORDER)}
                try:
                    index = _index(values.get("index"), where)
                    value = values.get("value") if values.get("value") is not None else values.get("label")
                    row = _row(conn, model=model, request_id=values.get("request_id"), idx=index,
                               text=values.get("text"), value=_json_cell(value), labels=labels,
                               labeled_by=values.get("labeled_by") or labeled_by,
                               labeled_at=values.get("labeled_at"), source="import", hooks=hooks, where=where)
                except FeedbackError as exc:
                    result.bad.append(str(exc))
                    continue
                if _insert(conn, row):
                    result.imported += 1
                else:
                    result.already_present += 1
    finally:
        engine.dispose()
    return result


def _clean(value: Any) -> Any:
    """pandas gives NaN for an empty CSV cell; ids and labels read as numbers become their text."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _json_cell(value: Any) -> Any:
    """A CSV cell with a JSON list or object (`["a", "b"]`, `{"thumbs": "up"}`) as that value; anything else as is."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _index(value: Any, where: str) -> int:
    if value is None:
        return 0
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise FeedbackError(f"{where}index {value!r} is not a whole number") from None
    if index < 0:
        raise FeedbackError(f"{where}index {index} is negative")
    return index


def read_feedback(url: str | None, model: str, *, after_id: int = 0) -> list[dict]:
    """Stored labels of `model`, oldest first (id > after_id)."""
    engine = db_engine(url or default_url())
    try:
        with engine.connect() as conn:
            query = sa.select(feedback).where(feedback.c.model == model, feedback.c.id > after_id)
            rows = [dict(r._mapping) for r in conn.execute(query.order_by(feedback.c.id))]
    finally:
        engine.dispose()
    return rows


def feedback_labels(db_url: str, model_name: str) -> list[dict]:
    """A classifier's stored labels as {text, label, source, labeled_by, labeled_at, request_id, feedback_id}:
    `feedback_rows` with the label's row flattened."""
    rows, _ = feedback_rows(db_url, model_name, label_hooks())
    return [{"text": r["row"]["text"], "label": r["row"]["label"], **{k: v for k, v in r.items() if k != "row"}}
            for r in rows]


def feedback_rows(url: str | None, model: str, hooks) -> tuple[list[dict], list[dict]]:
    """Every stored feedback of `model` as the training row it becomes (`hooks.to_row` of the model's family):
    ({row, source, labeled_by, labeled_at, request_id, feedback_id} per trainable one, {feedback_id, reason} per
    one that trains nothing). The row is built from the logged input and answer of the request the feedback names
    (a standalone text otherwise), so what was served is what is learned from."""
    if hooks is None or hooks.to_row is None:
        raise ValueError("this family's feedback does not become training rows yet")
    stored = read_feedback(url, model)
    served = _served_items(url, model, {r["request_id"] for r in stored if r["request_id"]})
    rows, skipped = [], []
    for r in stored:
        value = json.loads(r["value"]) if r["value"] is not None else r["label"]
        logged, output = served.get((r["request_id"], r["idx"]), (r["text"], None)) if r["request_id"] \
            else (r["text"], None)
        try:
            row = hooks.to_row(logged, output, value)
        except (ValueError, KeyError, TypeError) as exc:
            skipped.append({"feedback_id": r["id"], "reason": str(exc)})
            continue
        rows.append({"row": row, "source": r["source"], "labeled_by": r["labeled_by"],
                     "labeled_at": as_aware(r["labeled_at"]).isoformat(), "request_id": r["request_id"],
                     "feedback_id": r["id"]})
    return rows, skipped


def _served_items(url: str | None, model: str, request_ids: set[str]) -> dict[tuple[str, int], tuple[Any, Any]]:
    """(request id, item index) -> (logged input, logged output) of the served (non-shadow) answers."""
    if not request_ids:
        return {}
    engine = db_engine(url or default_url())
    p = predictions
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.select(p.c.request_id, p.c.input, p.c.output, p.c.role, p.c.idx).where(
                p.c.model == model, p.c.request_id.in_(request_ids), p.c.role != "shadow").order_by(p.c.id)).fetchall()
    finally:
        engine.dispose()
    return {(row.request_id, idx): (json.loads(row.input), json.loads(row.output))
            for row, idx in zip(found, item_positions(found), strict=True)}


def as_aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite drops the zone


def labeled_predictions(url: str | None, model: str) -> list[dict]:
    """Logged predictions joined with their latest feedback (`true_label`: its summary, `true_value`: the checked
    value, `answer`: the logged output): the rows live quality is measured on."""
    engine = db_engine(url or default_url())
    p, f = predictions, feedback
    latest = sa.select(f.c.request_id, f.c.idx, sa.func.max(f.c.id).label("fid")).where(
        f.c.model == model, f.c.request_id.is_not(None)).group_by(f.c.request_id, f.c.idx).subquery()
    try:
        with engine.connect() as conn:
            label_of = {(r.request_id, r.idx): r for r in conn.execute(
                sa.select(latest.c.request_id, latest.c.idx, f.c.label, f.c.value, f.c.ts).join(
                    f, f.c.id == latest.c.fid))}
            if not label_of:
                return []
            rows = conn.execute(sa.select(p).where(p.c.model == model, p.c.request_id.in_(
                {rid for rid, _ in label_of})).order_by(p.c.id)).fetchall()
    finally:
        engine.dispose()
    out = []
    for r, idx in zip(rows, item_positions(rows), strict=True):  # a shadow copy shares its served twin's index
        row = {**r._mapping, "idx": idx}
        match = label_of.get((row["request_id"], idx))
        if match is None:
            continue
        output = json.loads(row["output"])
        row.update(true_label=match.label, labeled_ts=as_aware(match.ts), ts=as_aware(row["ts"]),
                   true_value=json.loads(match.value) if match.value is not None else match.label, answer=output,
                   predicted=output.get("label") if isinstance(output, dict) else None,
                   scores=output.get("scores") if isinstance(output, dict) else None)
        out.append(row)
    return out
