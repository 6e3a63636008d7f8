"""Rollback state shared by the replicas of one model (`serving.shared_state`): the challenger's outcome window and
the rollback decision, in Redis or in a SQL database.

    store = open_shared_store("redis://127.0.0.1:6379/0")        # or postgresql+psycopg://..., sqlite:///path
    shared = SharedRollout(store, url=..., replica="host:pid:id", on_error=counter.inc)
    verdict = await shared.judge("sentiment", 4, ok=False, latency_s=0.2, slo=cfg.serving.rollback)
    verdict = await shared.decided("sentiment", 4)               # the registry watcher, every poll

Every replica appends its challenger outcomes to one window per (model, challenger version) and judges the
rollback SLOs over that window. The first replica that sees a breach records the decision (once: Redis SET NX, a
primary key in SQL) and rolls back in the registry; the others find the decision on their next judged request or
their next poll and stop routing to the challenger with the same reason. A store that does not answer is never a
client's problem: the replica judges its own window meanwhile (today's per-process behaviour), warns once per
outage and counts each failed call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Protocol

from tunesmith.config.base import redact_url
from tunesmith.serving.router import SloWindow

_log = logging.getLogger("tunesmith.serving")

OUTCOMES_TTL_S = 7 * 24 * 3600  # a challenger nobody has judged for a week leaves no window behind
DECISION_TTL_S = 90 * 24 * 3600  # the registry tag keeps the decision after this
TIMEOUT_S = 0.5  # a store slower than this is treated as down: a request never waits on it for longer


class SharedStateDown(Exception):
    """The shared store did not answer; the replica judges its own window until it does."""


@dataclass
class Decision:
    reason: str
    by: str  # the replica that decided: host:pid:random id
    at: str = ""


@dataclass
class Verdict:
    """What a judged request (or a poll) found: nothing to do (`decision` None), or a rollback to act on."""

    decision: Decision | None = None
    decided_here: bool = False


class SharedStore(Protocol):
    """One backend of `serving.shared_state`; every call may raise SharedStateDown."""

    def record(self, model: str, version: int, ok: bool, latency_s: float, size: int
               ) -> tuple[list[tuple[bool, float]], Decision | None]: ...
    def decide(self, model: str, version: int, decision: Decision) -> tuple[Decision, bool]: ...
    def decision(self, model: str, version: int) -> Decision | None: ...
    def close(self) -> None: ...


def shared_rollout(settings, *, on_error: Callable[[], None]) -> SharedRollout | None:
    """This replica's shared rollback state under `settings` (a ServingConfig), or None without shared_state."""
    if settings.shared_state is None:
        return None
    replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    shared = SharedRollout(open_shared_store(settings.shared_state), url=settings.shared_state, replica=replica,
                           on_error=on_error, retry_s=settings.poll_interval_s)
    _log.info("rollback state shared with the other replicas at %s (this replica: %s)", shared.url, replica)
    return shared


def open_shared_store(url: str) -> SharedStore:
    """The store behind a `serving.shared_state` URL (already checked by the config); connects on first use."""
    if url.split("://", 1)[0] in ("redis", "rediss"):
        return RedisStore(url)
    return SqlStore(url)


class SharedRollout:
    """This replica's side of the shared state: async calls, one warning per outage, a retry every `retry_s`."""

    def __init__(self, store: SharedStore, *, url: str, replica: str, on_error: Callable[[], None],
                 retry_s: float = 5.0):
        self.store = store
        self.url = redact_url(url)
        self.replica = replica
        self.on_error = on_error
        self.retry_s = retry_s
        self._down_since: float | None = None  # monotonic time of the last failed call; None while it answers

    @property
    def reachable(self) -> bool:
        return self._down_since is None

    async def judge(self, model: str, version: int, *, ok: bool, latency_s: float, slo) -> Verdict | None:
        """Record one challenger outcome and judge the shared window; None when the store is down (judge locally)."""
        found = await self._call(self.store.record, model, version, ok, latency_s, slo.window)
        if found is None:
            return None
        outcomes, decision = found
        if decision is not None:
            return Verdict(decision, decided_here=decision.by == self.replica)
        reason = SloWindow(slo.window, outcomes).breach(slo)
        if reason is None:
            return Verdict()
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        decided = await self._call(self.store.decide, model, version, Decision(reason, self.replica, now))
        if decided is None:
            return None
        return Verdict(decided[0], decided_here=decided[1])

    async def decided(self, model: str, version: int) -> Decision | None:
        """The rollback another replica decided for this challenger, if any (None also when the store is down)."""
        return await self._call(self.store.decision, model, version)

    async def close(self) -> None:
        await asyncio.to_thread(self.store.close)

    async def _call(self, fn, *args):
        if self._down_since is not None and time.monotonic() - self._down_since < self.retry_s:
            return None  # down a moment ago: do not make every request wait for the timeout
        try:
            result = await asyncio.to_thread(fn, *args)
        except SharedStateDown as exc:
            self.on_error()
            if self._down_since is None:
                _log.warning("shared rollback state %s is unreachable (%s); each replica judges its own challenger "
                             "requests until it answers again", self.url, exc)
            self._down_since = time.monotonic()
            return None
        if self._down_since is not None:
            _log.warning("shared rollback state %s answers again; judging the shared window", self.url)
            self._down_since = None
        return result


# --- Redis ----------------------------------------------------------------------------------------------------


class RedisStore:
    """A capped list of outcomes per (model, version) (LPUSH + LTRIM in one MULTI) and a SET NX decision key."""

    def __init__(self, url: str):
        import redis

        self._errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)

    def record(self, model, version, ok, latency_s, size):
        outcomes, decision = _keys(model, version)
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(outcomes, f"{int(ok)} {latency_s:.6f}")
            pipe.ltrim(outcomes, 0, size - 1)
            pipe.expire(outcomes, OUTCOMES_TTL_S)
            pipe.lrange(outcomes, 0, size - 1)
            pipe.get(decision)
            *_, values, found = pipe.execute()
        except self._errors as exc:
            raise SharedStateDown(_describe(exc)) from None
        return [_outcome(v) for v in values], _decision(found)

    def decide(self, model, version, decision):
        key = _keys(model, version)[1]
        try:
            won = self.client.set(key, json.dumps(asdict(decision)), nx=True, ex=DECISION_TTL_S)
            found = decision if won else _decision(self.client.get(key))
        except self._errors as exc:
            raise SharedStateDown(_describe(exc)) from None
        return found or decision, bool(won)

    def decision(self, model, version):
        try:
            return _decision(self.client.get(_keys(model, version)[1]))
        except self._errors as exc:
            raise SharedStateDown(_describe(exc)) from None

    def close(self) -> None:
        self.client.close()


def _keys(model: str, version: int) -> tuple[str, str]:
    base = f"tunesmith:rollout:{model}:{version}"
    return f"{base}:outcomes", f"{base}:rollback"


def _outcome(value: bytes | str) -> tuple[bool, float]:
    ok, latency = (value.decode() if isinstance(value, bytes) else value).split()
    return ok == "1", float(latency)


def _decision(value: bytes | str | None) -> Decision | None:
    if value is None:
        return None
    fields = json.loads(value)
    return Decision(fields["reason"], fields["by"], fields.get("at", ""))


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {redact_url(str(exc))}"


# --- SQL ------------------------------------------------------------------------------------------------------


class SqlStore:
    """The same on two small tables of any SQLAlchemy database (Postgres for many hosts, a SQLite file for one)."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.sa = sa
        self.engine = sa.create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))
        meta = sa.MetaData()
        self.outcomes = sa.Table(
            "tunesmith_rollout_outcomes", meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("model", sa.String(255), nullable=False), sa.Column("version", sa.Integer, nullable=False),
            sa.Column("ok", sa.Boolean, nullable=False), sa.Column("latency_s", sa.Float, nullable=False),
            sa.Index("ix_tunesmith_rollout_outcomes_model_version", "model", "version", "id"))
        self.decisions = sa.Table(
            "tunesmith_rollout_decisions", meta,
            sa.Column("model", sa.String(255), primary_key=True), sa.Column("version", sa.Integer, primary_key=True),
            sa.Column("reason", sa.Text, nullable=False), sa.Column("decided_by", sa.String(255), nullable=False),
            sa.Column("decided_at", sa.String(40), nullable=False))
        self.meta = meta
        self._created = False

    def _begin(self):
        if not self._created:  # on first use, not at start: a database down at start must not stop the server
            self.meta.create_all(self.engine)
            self._created = True
        return self.engine.begin()

    def record(self, model, version, ok, latency_s, size):
        sa, t = self.sa, self.outcomes
        mine = (t.c.model == model) & (t.c.version == version)
        try:
            with self._begin() as conn:
                conn.execute(t.insert().values(model=model, version=version, ok=ok, latency_s=latency_s))
                rows = conn.execute(sa.select(t.c.id, t.c.ok, t.c.latency_s).where(mine)
                                    .order_by(t.c.id.desc()).limit(size)).all()
                if len(rows) == size:  # the window is full: older outcomes leave it
                    conn.execute(t.delete().where(mine & (t.c.id < rows[-1].id)))
                found = self._decision(conn, model, version)
        except sa.exc.SQLAlchemyError as exc:
            raise SharedStateDown(_describe(exc)) from None
        return [(bool(r.ok), float(r.latency_s)) for r in rows], found

    def decide(self, model, version, decision):
        sa = self.sa
        try:
            try:
                with self._begin() as conn:
                    conn.execute(self.decisions.insert().values(
                        model=model, version=version, reason=decision.reason, decided_by=decision.by,
                        decided_at=decision.at))
                return decision, True
            except sa.exc.IntegrityError:  # another replica decided first
                with self._begin() as conn:
                    return self._decision(conn, model, version) or decision, False
        except sa.exc.SQLAlchemyError as exc:
            raise SharedStateDown(_describe(exc)) from None

    def decision(self, model, version):
        try:
            with self._begin() as conn:
                return self._decision(conn, model, version)
        except self.sa.exc.SQLAlchemyError as exc:
            raise SharedStateDown(_describe(exc)) from None

    def _decision(self, conn, model, version) -> Decision | None:
        t = self.decisions
        row = conn.execute(self.sa.select(t.c.reason, t.c.decided_by, t.c.decided_at)
                           .where((t.c.model == model) & (t.c.version == version))).first()
        return Decision(row.reason, row.decided_by, row.decided_at) if row is not None else None

    def close(self) -> None:
        self.engine.dispose()


def _connect_args(url: str) -> dict:
    """Short connect timeouts for the drivers that take one: a database that is down costs a request little."""
    dialect = url.split("://", 1)[0].split("+", 1)[0]
    if dialect == "sqlite":
        return {"timeout": 2}  # seconds to wait for another replica's write lock
    if dialect in ("postgresql", "mysql", "mariadb"):
        return {"connect_timeout": 2}
    return {}
