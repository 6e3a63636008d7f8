"""The review queue's tables, in the prediction log's database: items to label and the labels reviewers gave.

    add_items(url, [ReviewItem(...)])                 # idempotent: an item's key is stored once
    item = next_item(url, "sentiment", reviewer="ana")
    add_label(url, item["id"], label="pos", reviewer="ana", action=Action.RELABEL)
    reviewed_labels(url, "sentiment")                 # -> rows for the next dataset version

Every write is its own committed transaction, so a label a reviewer saw accepted survives a server crash.
Undo marks a label `undone_at` instead of deleting it: the audit trail keeps what was entered.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import sqlalchemy as sa

from tunesmith.config import ReviewSource
from tunesmith.monitoring.predictions import add_new_columns
from tunesmith.monitoring.predictions import db_engine as _prediction_engine

Source = ReviewSource  # low_confidence | shadow_disagreement | label_issue


class Action(str, Enum):
    ACCEPT = "accept"  # the model's guess is right
    RELABEL = "relabel"  # the reviewer picked another label
    SKIP = "skip"  # not sure / not labelable: no label, but the item counts as seen by this reviewer


_meta = sa.MetaData()
items = sa.Table(
    "review_items", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),  # sha256 of what makes the item unique
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("model_version", sa.Integer, nullable=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("guess", sa.String(200), nullable=True),  # the model's (or the probe's) label
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("scores", sa.Text, nullable=True),  # JSON {label: probability} when the model gave them
    sa.Column("context", sa.Text, nullable=True),  # JSON: shadow answer, given label, file:line, ...
    sa.Column("request_id", sa.String(64), nullable=True, index=True),
    sa.Column("uncertainty", sa.Float, nullable=False, default=0.0),
    sa.Column("priority", sa.Integer, nullable=False, default=0, index=True),  # review order: 0 first
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
labels = sa.Table(
    "review_labels", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id"), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=True),  # None for skip; another family's value: its summary
    sa.Column("value", sa.Text, nullable=True),  # JSON: the family's checked value (a label set, spans, a grade...)
    sa.Column("reviewer", sa.String(100), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
)


@dataclass
class ReviewItem:
    """One thing to review, before it is stored."""

    model: str
    source: Source
    text: str
    guess: str | None = None
    confidence: float | None = None
    scores: dict[str, float] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    model_version: int | None = None
    uncertainty: float = 0.0

    def key(self) -> str:
        # A served prediction is one (request, text); a flagged training row is one (file:line, text).
        where = self.request_id or str(self.context.get("row", ""))
        return hashlib.sha256(json.dumps([self.model, where, self.text]).encode("utf-8")).hexdigest()


_engines: dict[str, sa.Engine] = {}


def db_engine(url: str) -> sa.Engine:
    """One engine per URL per process, with the prediction log's and the review tables created."""
    if url not in _engines:
        eng = _prediction_engine(url)
        _meta.create_all(eng)
        add_new_columns(eng, _meta)  # review_labels.value, for queues an older tunesmith created
        _engines[url] = eng
    return _engines[url]


def dispose(url: str) -> None:
    eng = _engines.pop(url, None)
    if eng is not None:
        eng.dispose()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)  # SQLite hands back naive datetimes


def add_items(url: str, new: list[ReviewItem]) -> tuple[int, int]:
    """Store the items not stored yet; returns (added, already there). Safe to re-run on the same input."""
    eng = db_engine(url)
    by_key = {it.key(): it for it in new}  # the same prediction twice in one batch: once
    with eng.begin() as conn:
        existing = set()
        keys = list(by_key)
        for i in range(0, len(keys), 500):
            existing |= set(conn.scalars(sa.select(items.c.key).where(items.c.key.in_(keys[i:i + 500]))))
        rows = [{"key": k, "model": it.model, "model_version": it.model_version, "source": Source(it.source).value,
                 "text": it.text, "guess": it.guess, "confidence": it.confidence,
                 "scores": json.dumps(it.scores) if it.scores is not None else None,
                 "context": json.dumps(it.context, default=str), "request_id": it.request_id,
                 "uncertainty": float(it.uncertainty), "priority": 0, "created_at": _now()}
                for k, it in by_key.items() if k not in existing]
        if rows:
            conn.execute(items.insert(), rows)
    return len(rows), len(new) - len(rows)


def _decode(row) -> dict:
    out = dict(row._mapping)
    out["scores"] = json.loads(out["scores"]) if out.get("scores") else None
    out["context"] = json.loads(out["context"]) if out.get("context") else {}
    if out.get("created_at") is not None:
        out["created_at"] = _utc(out["created_at"])
    return out


def list_items(url: str, model: str, *, pending_only: bool = False) -> list[dict]:
    """The model's items in review order (priority, then id); `pending_only`: those nobody labeled yet."""
    query = sa.select(items).where(items.c.model == model).order_by(items.c.priority, items.c.id)
    if pending_only:
        query = query.where(~items.c.id.in_(sa.select(labels.c.item_id).where(labels.c.undone_at.is_(None))))
    with db_engine(url).connect() as conn:
        return [_decode(r) for r in conn.execute(query)]


def set_priorities(url: str, order: list[int], *, start: int = 0) -> None:
    """Store the review order: `order[i]` is the id of the item to show (start + i)-th."""
    with db_engine(url).begin() as conn:
        for rank, item_id in enumerate(order, start):
            conn.execute(items.update().where(items.c.id == item_id).values(priority=rank))


def get_item(url: str, item_id: int) -> dict | None:
    with db_engine(url).connect() as conn:
        row = conn.execute(sa.select(items).where(items.c.id == item_id)).first()
    return _decode(row) if row is not None else None


def next_item(url: str, model: str, *, reviewer: str) -> dict | None:
    """The first item in review order that this reviewer has not labeled or skipped yet."""
    seen = sa.select(labels.c.item_id).where(labels.c.reviewer == reviewer, labels.c.undone_at.is_(None))
    query = (sa.select(items).where(items.c.model == model, ~items.c.id.in_(seen))
             .order_by(items.c.priority, items.c.id).limit(1))
    with db_engine(url).connect() as conn:
        row = conn.execute(query).first()
    return _decode(row) if row is not None else None


def add_label(url: str, item_id: int, *, label: str | None, reviewer: str, action: Action | str,
              at: datetime | None = None, value: Any = None) -> int:
    """Record one reviewer's decision on an item (committed before returning); returns the label row id. `label`
    is a classifier's label, or the short summary of `value`, another family's checked value."""
    action = Action(action)
    reviewer = reviewer.strip()
    if not reviewer:
        raise ValueError("a reviewer name is needed to record a label")
    if action is not Action.SKIP and not label:
        raise ValueError(f"action {action.value} needs a label")
    with db_engine(url).begin() as conn:
        if conn.execute(sa.select(items.c.id).where(items.c.id == item_id)).first() is None:
            raise KeyError(f"review item {item_id} does not exist")
        result = conn.execute(labels.insert().values(
            item_id=item_id, label=None if action is Action.SKIP else label, reviewer=reviewer,
            value=None if action is Action.SKIP or value is None else json.dumps(value),
            action=action.value, labeled_at=at or _now()))
        return int(result.inserted_primary_key[0])


def undo_last(url: str, model: str, *, reviewer: str, item_id: int | None = None) -> int | None:
    """Mark this reviewer's latest live label on `model` (on `item_id` when given) as undone; returns its item id
    (None: nothing to undo). Only `reviewer`'s own labels are ever touched."""
    query = (sa.select(labels.c.id, labels.c.item_id).join(items, items.c.id == labels.c.item_id)
             .where(items.c.model == model, labels.c.reviewer == reviewer, labels.c.undone_at.is_(None))
             .order_by(labels.c.labeled_at.desc(), labels.c.id.desc()).limit(1))
    if item_id is not None:
        query = query.where(labels.c.item_id == item_id)
    with db_engine(url).begin() as conn:
        row = conn.execute(query).first()
        if row is None:
            return None
        conn.execute(labels.update().where(labels.c.id == row.id).values(undone_at=_now()))
        return int(row.item_id)


def label_rows(url: str, model: str, *, include_undone: bool = False) -> list[dict]:
    """Every label given on `model`'s items, oldest first, joined with the item's text and request id."""
    query = (sa.select(labels, items.c.text, items.c.request_id, items.c.guess, items.c.source, items.c.context)
             .join(items, items.c.id == labels.c.item_id).where(items.c.model == model)
             .order_by(labels.c.labeled_at, labels.c.id))
    if not include_undone:
        query = query.where(labels.c.undone_at.is_(None))
    with db_engine(url).connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for r in rows:
        r["labeled_at"] = _utc(r["labeled_at"])
        r["value"] = json.loads(r["value"]) if r["value"] is not None else r["label"]
        r["context"] = json.loads(r["context"]) if r["context"] else {}
    return rows


def progress(url: str, model: str, *, reviewer: str | None = None) -> dict:
    """Queue size, items labeled by anyone, and (with `reviewer`) how many this reviewer has done."""
    live = labels.c.undone_at.is_(None)
    with db_engine(url).connect() as conn:
        total = conn.scalar(sa.select(sa.func.count()).select_from(items).where(items.c.model == model))
        done_any = conn.scalar(sa.select(sa.func.count(sa.distinct(labels.c.item_id)))
                               .join(items, items.c.id == labels.c.item_id).where(items.c.model == model, live))
        mine = 0
        if reviewer:
            mine = conn.scalar(sa.select(sa.func.count(sa.distinct(labels.c.item_id)))
                               .join(items, items.c.id == labels.c.item_id)
                               .where(items.c.model == model, live, labels.c.reviewer == reviewer))
    return {"total": int(total or 0), "labeled": int(done_any or 0), "mine": int(mine or 0)}


def latest_per_reviewer(rows: list[dict]) -> dict[int, dict[str, dict]]:
    """{item_id: {reviewer: their latest live label row}} (a reviewer who relabels an item overrides themself)."""
    out: dict[int, dict[str, dict]] = {}
    for r in rows:  # rows are oldest first: later ones win
        out.setdefault(r["item_id"], {})[r["reviewer"]] = r
    return out


def canonical(value: Any) -> str:
    """A value as comparable text: two reviewers' label sets, spans or answers are equal when this is."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def family_of(item: dict) -> str | None:
    """The family kind a queued item's value belongs to (None: a classifier's label, as every item was before)."""
    return (item.get("context") or {}).get("family")


def reviewed_labels(db_url: str, model_name: str) -> list[dict]:
    """One resolved decision per reviewed item of `model_name`, ready to join the next dataset version.

    Resolution: each reviewer's latest live decision counts once; skips don't vote; the value with the most
    votes wins, a tie going to the value given most recently. `labeled_by` / `labeled_at` are the reviewer and
    time of the latest vote for the winning value. Ordered by item id. A classifier's item gives text + label;
    another family's gives the training row its value becomes (`FeedbackHooks.to_row` of the served input and
    answer), or {skip: why, feedback_id} when it trains nothing (a rejected chat answer without a rewrite).
    """
    from tunesmith.families import get

    resolved = []
    for item_id, by_reviewer in sorted(latest_per_reviewer(label_rows(db_url, model_name)).items()):
        votes = [r for r in by_reviewer.values() if r["action"] != Action.SKIP.value and r["label"]]
        if not votes:
            continue
        counts = Counter(canonical(r["value"]) for r in votes)
        latest = {v: max((r for r in votes if canonical(r["value"]) == v), key=lambda r: (r["labeled_at"], r["id"]))
                  for v in counts}
        winner = max(counts, key=lambda v: (counts[v], latest[v]["labeled_at"], latest[v]["id"]))
        row = latest[winner]
        provenance = {"source": "review", "labeled_by": row["reviewer"], "labeled_at": row["labeled_at"].isoformat(),
                      "request_id": row["request_id"], "item_id": item_id}
        kind = family_of(row)
        if kind is None:
            resolved.append({"text": row["text"], "label": row["label"], **provenance})
            continue
        ctx = row["context"]
        try:
            trained = get(kind).feedback.to_row(ctx.get("input"), ctx.get("output"), row["value"])
        except (ValueError, KeyError, TypeError) as exc:
            resolved.append({"skip": str(exc), "feedback_id": f"review item {item_id}"})
            continue
        resolved.append({"row": trained, **provenance})
    return resolved
