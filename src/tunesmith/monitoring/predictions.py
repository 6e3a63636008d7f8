"""The prediction log: what each served request got, for drift and live-accuracy monitoring.

    log = PredictionLog("sqlite:///.tunesmith/predictions.db", sample_rate=0.1, redact=None)
    log.record(request_id=rid, model="sentiment", version=3, role="champion", route="/v1/classify",
               input="great film", output={"label": "pos"}, confidence=0.93, latency_ms=12.5)
    rows = read_predictions("sqlite:///.tunesmith/predictions.db", model="sentiment")

Writes go through a background thread, so the server never waits on the database; `close()` flushes.
Any SQLAlchemy URL works (`postgresql+psycopg://...` for a shared store).
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

_log = logging.getLogger(__name__)

DEFAULT_DB = Path(".tunesmith") / "predictions.db"

log_meta = sa.MetaData()
predictions = sa.Table(
    "predictions", log_meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("model", sa.String(200), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # champion / challenger / shadow
    sa.Column("route", sa.String(64), nullable=False),
    sa.Column("input", sa.Text, nullable=False),  # JSON; redacted when the redactor is on
    sa.Column("output", sa.Text, nullable=False),  # JSON
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("redacted", sa.Boolean, nullable=False, default=False),
    # the item's position in its request (what feedback's `index` names); None in logs written before it was stored
    sa.Column("idx", sa.Integer, nullable=True),
    # serving.filters actions on the answer (JSON list: "confidence_floor:abstained", "deny:refused", ...); None: none
    sa.Column("filters", sa.Text, nullable=True),
)


def item_positions(rows) -> list[int]:
    """Each logged row's position in its request: the `idx` the server stored, else (a row logged before tunesmith
    stored it) its position among its request's rows of the same kind (served, or shadow copy), in id order. Rows
    are dicts or SQLAlchemy rows with request_id, role and idx, oldest first."""
    from collections import Counter

    seen: Counter = Counter()
    out = []
    for row in rows:
        get = row.get if isinstance(row, dict) else row._mapping.get
        key = (get("request_id"), get("role") == "shadow")
        counted = seen[key]
        seen[key] += 1
        out.append(int(get("idx")) if get("idx") is not None else counted)
    return out


def default_url(workdir: Path | None = None) -> str:
    path = ((workdir or Path.cwd()) / DEFAULT_DB).resolve()
    return f"sqlite:///{path}"


_ready: set[tuple[str, frozenset]] = set()  # (URL, tables) this process created or migrated already


def db_engine(url: str) -> sa.Engine:
    """An engine on the prediction log, its tables created (and older ones migrated) once per URL per process: the
    schema inspection is not repeated on every feedback POST. A SQLite file that is gone is set up again, and so is
    a URL set up before a module declared more tables of the log (a server logs predictions before its first
    feedback imports the feedback table)."""
    ready = (url, frozenset(log_meta.tables))
    missing = ready not in _ready
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        missing = missing or not path.exists()
    elif url.startswith("sqlite"):
        missing = True  # an in-memory database is new with every engine
    engine = sa.create_engine(url)
    if missing:
        log_meta.create_all(engine)
        add_new_columns(engine)
        _ready.add(ready)
    return engine


def add_new_columns(engine: sa.Engine, meta: sa.MetaData | None = None) -> list[str]:
    """Add the nullable columns a newer tunesmith declares to tables an older one created (feedback.value,
    review_labels.value): the only schema changes the log has had. Returns `table.column` for each column added."""
    inspector = sa.inspect(engine)
    added = []
    for table in (meta or log_meta).sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in have or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
            added.append(f"{table.name}.{column.name}")
    if added:
        _log.info("prediction log %s: added column(s) %s", engine.url.render_as_string(hide_password=True),
                  ", ".join(added))
    return added


class PredictionLog:
    """Sampled, optionally redacted, asynchronous writes of served predictions."""

    def __init__(
        self,
        url: str | None = None,
        *,
        sample_rate: float = 1.0,
        redact: Callable[[str], str] | None = None,
        seed: int | None = None,
        max_pending: int = 10_000,
    ):
        self.url = url or default_url()
        self.sample_rate = sample_rate
        self.redact = redact
        self.engine = db_engine(self.url)
        self._rng = random.Random(seed)
        self._pending: queue.Queue = queue.Queue(maxsize=max_pending)
        self.dropped = 0  # rows refused because the writer fell behind; logged on close
        self._writer = threading.Thread(target=self._write_loop, name="prediction-log", daemon=True)
        self._writer.start()

    def sampled(self) -> bool:
        return self.sample_rate >= 1 or self._rng.random() < self.sample_rate

    def record(self, *, request_id: str, model: str, version: int, role: str, route: str, input: Any,
               output: Any, confidence: float | None, latency_ms: float, force: bool = False,
               idx: int | None = None, filters: list[str] | None = None) -> bool:
        """Queue one row (if sampled); returns whether it was queued. `force` skips sampling (shadow pairs); `idx`
        is the item's position in its request (a batch's items are sampled, and may finish, independently)."""
        if not force and not self.sampled():
            return False
        row = {
            "ts": datetime.now(timezone.utc), "request_id": request_id, "model": model, "version": int(version),
            "role": role, "route": route, "input": json.dumps(self._redact(input), default=str),
            "output": json.dumps(output, default=_jsonable), "confidence": confidence,
            "latency_ms": float(latency_ms), "redacted": self.redact is not None, "idx": idx,
            "filters": json.dumps(filters) if filters else None,
        }
        try:
            self._pending.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def _redact(self, value: Any) -> Any:
        if self.redact is None:
            return value
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self._redact(v) for v in value]
        if isinstance(value, dict):
            return {k: self._redact(v) for k, v in value.items()}
        return value

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every queued row is written."""
        done = threading.Event()
        self._pending.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self.flush()
        self._pending.put(None)
        self._writer.join(timeout=10)
        if self.dropped:
            _log.warning("prediction log: %d rows dropped because the database fell behind", self.dropped)
        self.engine.dispose()

    def _write_loop(self) -> None:
        while True:
            first = self._pending.get()
            batch, markers = [], []
            for item in [first, *self._drain()]:
                if isinstance(item, threading.Event):
                    markers.append(item)
                elif item is not None:
                    batch.append(item)
            if batch:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(predictions.insert(), batch)
                except Exception:  # the server keeps serving; the gap is logged
                    _log.exception("prediction log: writing %d rows to %s failed", len(batch), self.url)
            for marker in markers:
                marker.set()
            if first is None:
                return

    def _drain(self, limit: int = 500) -> list:
        items = []
        while len(items) < limit:
            try:
                items.append(self._pending.get_nowait())
            except queue.Empty:
                break
        return items


def _jsonable(value: Any) -> Any:
    return getattr(value, "__dict__", str(value))


def read_predictions(url: str | None = None, *, model: str | None = None, limit: int | None = None) -> list[dict]:
    """Logged predictions, oldest first, with `input`/`output` decoded from JSON."""
    engine = db_engine(url or default_url())
    query = sa.select(predictions).order_by(predictions.c.id)
    if model is not None:
        query = query.where(predictions.c.model == model)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    engine.dispose()
    for row in rows:
        row["input"], row["output"] = json.loads(row["input"]), json.loads(row["output"])
    return rows
