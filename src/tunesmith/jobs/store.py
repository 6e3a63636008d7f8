"""The jobs database: API keys (hashed), uploaded files, fine-tuning jobs, their events and checkpoints.

    store = JobStore("sqlite:///.tunesmith/jobs/jobs.db", state_dir=Path(".tunesmith/jobs"))
    key = store.add_key("team-a", max_jobs=4)              # the plaintext key is returned once, stored as sha256
    job = store.create_job("team-a", spec={...})           # an OpenAI-shaped FineTuningJob dict
    store.claim(job["id"], "worker-1", lease_s=30)         # True for exactly one caller

The queue (huey) only carries job ids; the truth about a job is here. A worker claims a job with one conditional
UPDATE (status queued -> running, a lease), heartbeats while it trains, and a job whose lease ran out is found by
`expired_leases` and requeued or failed, so a killed worker's job is never lost and never runs twice at once.
Objects are returned as the dicts the `openai` client's types parse (`FileObject`, `FineTuningJob`, ...).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    event,
    insert,
    select,
    update,
)

TERMINAL = ("succeeded", "failed", "cancelled")

_meta = MetaData()
api_keys = Table(
    "api_keys", _meta,
    Column("key_hash", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("max_jobs", Integer), Column("max_file_bytes", Integer),
    Column("created_at", Integer, nullable=False),
    Column("role", String(16)),  # read | train | promote | admin; None: a key made before roles (train)
)
# What a key may do, each role including the ones before it: read (files, jobs, models, and chat with its own
# fine-tuned models), train (upload and delete files, start and cancel jobs), promote, admin.
ROLES = ("read", "train", "promote", "admin")
files = Table(
    "files", _meta,
    Column("id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False, index=True),
    Column("filename", String(500), nullable=False), Column("purpose", String(50), nullable=False),
    Column("bytes", Integer, nullable=False), Column("path", Text, nullable=False),
    Column("status", String(20), nullable=False), Column("status_details", Text),
    Column("tunesmith", JSON), Column("created_at", Integer, nullable=False),
)
jobs = Table(
    "jobs", _meta,
    Column("id", String(40), primary_key=True),
    Column("owner", String(200), nullable=False, index=True),
    Column("seq", Float, nullable=False),  # creation order for listing (created_at is whole seconds)
    Column("status", String(20), nullable=False, index=True),
    Column("spec", JSON, nullable=False),
    Column("error", JSON), Column("fine_tuned_model", String(300)),
    Column("created_at", Integer, nullable=False), Column("finished_at", Integer),
    Column("trained_tokens", Integer),
    Column("worker_id", String(200)), Column("lease_until", Float), Column("attempts", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("queued_at", Float),  # when it last entered the queue: a queued job with no message is re-sent
)
events = Table(
    "events", _meta,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("job_id", String(40), nullable=False, index=True),
    Column("created_at", Integer, nullable=False), Column("level", String(10), nullable=False),
    Column("message", Text, nullable=False), Column("type", String(20), nullable=False), Column("data", JSON),
)
# The append-only audit log of key changes and of what keys did to registered models (promote, rollback, delete):
# the store only ever inserts into it and reads it back.
audit = Table(
    "audit", _meta,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False), Column("owner", String(200), nullable=False, index=True),
    Column("who", String(300), nullable=False), Column("action", String(40), nullable=False),
    Column("target", String(300), nullable=False), Column("reason", Text, nullable=False),
    Column("detail", JSON),
)
AUDIT_ACTIONS = ("key_add", "key_revoke", "model_promote", "model_rollback", "model_delete")
checkpoints = Table(
    "checkpoints", _meta,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("job_id", String(40), nullable=False, index=True),
    Column("created_at", Integer, nullable=False), Column("step", Integer, nullable=False),
    Column("metrics", JSON), Column("path", Text), Column("model_ref", String(300)),
)


@dataclass(frozen=True)
class KeyInfo:
    owner: str
    max_jobs: int | None
    max_file_bytes: int | None
    role: str = "train"
    key_id: str = ""  # the key's public id (`key_` + the start of its sha256): what lists and revocations name

    def may(self, role: str) -> bool:
        """Whether this key's role includes `role` (read < train < promote < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id(key_hash: str) -> str:
    """The public id of a stored key: enough of its sha256 to name it, nothing that reveals the key."""
    return f"key_{key_hash[:16]}"


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


class JobStore:
    """SQLAlchemy over SQLite (default) or any database URL; safe across threads and processes."""

    def __init__(self, url: str | None = None, *, state_dir: str | Path = ".tunesmith/jobs"):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.url = url or f"sqlite:///{(self.state_dir / 'jobs.db').resolve()}"
        sqlite = self.url.startswith("sqlite")
        self.engine = create_engine(self.url, connect_args={"timeout": 30} if sqlite else {})
        if sqlite:
            @event.listens_for(self.engine, "connect")
            def _wal(conn, _record):  # readers do not block the writer; several processes share the file
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA busy_timeout=30000")
        _meta.create_all(self.engine)
        self._add_role_column()

    def _add_role_column(self) -> None:
        """A key table made before roles existed gets the (nullable) role column: its keys stay `train`."""
        from sqlalchemy import inspect, text

        if "role" not in {c["name"] for c in inspect(self.engine).get_columns("api_keys")}:
            with self.engine.begin() as c:
                c.execute(text("ALTER TABLE api_keys ADD COLUMN role VARCHAR(16)"))

    # --- keys ---------------------------------------------------------------------------------------------

    def add_key(self, owner: str, *, max_jobs: int | None = None, max_file_bytes: int | None = None,
                role: str = "train", who: str = "operator", reason: str = "") -> str:
        """A new key for `owner` (returned once, stored as its sha256); the change is audited (key_add)."""
        if role not in ROLES:
            raise ValueError(f"role: one of {', '.join(ROLES)}, not {role!r}")
        key = f"ts-{secrets.token_urlsafe(24)}"
        digest = hash_key(key)
        with self.engine.begin() as c:
            c.execute(insert(api_keys).values(key_hash=digest, owner=owner, max_jobs=max_jobs,
                                              max_file_bytes=max_file_bytes, created_at=int(time.time()), role=role))
            self._audit(c, owner, who, "key_add", key_id(digest), reason, {"role": role, "max_jobs": max_jobs,
                                                                           "max_file_bytes": max_file_bytes})
        return key

    def key_info(self, key: str) -> KeyInfo | None:
        with self.engine.connect() as c:
            row = c.execute(select(api_keys).where(api_keys.c.key_hash == hash_key(key))).mappings().first()
        return _key_info(row) if row else None

    def list_keys(self, owner: str | None = None) -> list[KeyInfo]:
        """The keys (of `owner`, or all), oldest first; never the keys themselves."""
        q = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_hash)
        if owner is not None:
            q = q.where(api_keys.c.owner == owner)
        with self.engine.connect() as c:
            return [_key_info(r) for r in c.execute(q).mappings()]

    def revoke_key(self, kid: str, *, owner: str | None = None, who: str, reason: str) -> KeyInfo | None:
        """Delete the key named by its public id (only among `owner`'s when given); audited (key_revoke).
        Returns the revoked key's info, or None when there is no such key."""
        if not re.fullmatch(r"key_[0-9a-f]{16}", kid or ""):
            return None
        with self.engine.begin() as c:
            q = select(api_keys).where(api_keys.c.key_hash.startswith(kid.removeprefix("key_"), autoescape=True))
            if owner is not None:
                q = q.where(api_keys.c.owner == owner)
            rows = c.execute(q).mappings().all()
            if len(rows) != 1:
                return None
            info = _key_info(rows[0])
            c.execute(api_keys.delete().where(api_keys.c.key_hash == rows[0]["key_hash"]))
            self._audit(c, info.owner, who, "key_revoke", kid, reason, {"role": info.role})
        return info

    # --- the audit log -------------------------------------------------------------------------------------

    def record_audit(self, owner: str, *, who: str, action: str, target: str, reason: str,
                     detail: dict | None = None) -> dict:
        with self.engine.begin() as c:
            return self._audit(c, owner, who, action, target, reason, detail)

    @staticmethod
    def _audit(c, owner: str, who: str, action: str, target: str, reason: str, detail: dict | None) -> dict:
        if action not in AUDIT_ACTIONS:
            raise ValueError(f"audit: unknown action {action!r}")
        values = dict(at=time.time(), owner=owner, who=(who or "unknown")[:300], action=action, target=target[:300],
                      reason=(reason or "").strip()[:1000], detail=detail)
        c.execute(insert(audit).values(**values))
        return values

    def audit_log(self, owner: str | None = None, *, action_prefix: str | None = None) -> list[dict]:
        """Audit entries (of `owner`, or all), oldest first."""
        q = select(audit).order_by(audit.c.seq)
        if owner is not None:
            q = q.where(audit.c.owner == owner)
        if action_prefix:
            q = q.where(audit.c.action.startswith(action_prefix))
        with self.engine.connect() as c:
            return [{k: r[k] for k in ("at", "owner", "who", "action", "target", "reason", "detail")}
                    for r in c.execute(q).mappings()]

    def deleted_models(self, owner: str) -> set[str]:
        """The fine-tuned models (`NAME:VERSION`) this owner deleted."""
        q = select(audit.c.target).where(and_(audit.c.owner == owner, audit.c.action == "model_delete"))
        with self.engine.connect() as c:
            return {r[0] for r in c.execute(q)}

    # --- files --------------------------------------------------------------------------------------------

    def add_file(self, owner: str, *, filename: str, purpose: str, path: Path, bytes: int, status: str,
                 status_details: str | None = None, tunesmith: dict | None = None, file_id: str | None = None) -> dict:
        values = dict(id=file_id or new_id("file"), owner=owner, filename=filename, purpose=purpose, bytes=bytes,
                      path=str(path), status=status, status_details=status_details, tunesmith=tunesmith,
                      created_at=int(time.time()))
        with self.engine.begin() as c:
            c.execute(insert(files).values(**values))
        return _file_object(values)

    def get_file(self, owner: str | None, file_id: str) -> dict | None:
        row = self._file_row(owner, file_id)
        return _file_object(row) if row else None

    def file_path(self, file_id: str) -> Path | None:
        row = self._file_row(None, file_id)
        return Path(row["path"]) if row else None

    def list_files(self, owner: str, purpose: str | None = None) -> list[dict]:
        q = select(files).where(files.c.owner == owner).order_by(files.c.created_at.desc())
        if purpose:
            q = q.where(files.c.purpose == purpose)
        with self.engine.connect() as c:
            return [_file_object(r) for r in c.execute(q).mappings()]

    def delete_file(self, owner: str, file_id: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(files.delete().where(and_(files.c.id == file_id, files.c.owner == owner))).rowcount == 1

    def _file_row(self, owner: str | None, file_id: str):
        q = select(files).where(files.c.id == file_id)
        if owner is not None:
            q = q.where(files.c.owner == owner)
        with self.engine.connect() as c:
            return c.execute(q).mappings().first()

    # --- jobs ---------------------------------------------------------------------------------------------

    def create_job(self, owner: str, *, spec: dict) -> dict:
        job_id = new_id("ftjob")
        with self.engine.begin() as c:
            c.execute(insert(jobs).values(id=job_id, owner=owner, seq=time.time(), status="queued", spec=spec,
                                          created_at=int(time.time()), attempts=0, cancel_requested=False,
                                          queued_at=time.time()))
        self.add_event(job_id, f"Created fine-tuning job: {job_id}")
        return self.get_job(job_id)

    def get_job(self, job_id: str, owner: str | None = None) -> dict | None:
        q = select(jobs).where(jobs.c.id == job_id)
        if owner is not None:
            q = q.where(jobs.c.owner == owner)
        with self.engine.connect() as c:
            row = c.execute(q).mappings().first()
        return _job_object(row) if row else None

    def list_jobs(self, owner: str, *, after: str | None = None, limit: int = 20) -> tuple[list[dict], bool]:
        return self._page(jobs, jobs.c.owner == owner, after, limit, _job_object)

    def active_jobs(self, owner: str) -> int:
        with self.engine.connect() as c:
            return len(c.execute(select(jobs.c.id).where(and_(jobs.c.owner == owner,
                                                               jobs.c.status.not_in(TERMINAL)))).all())

    def claim(self, job_id: str, worker_id: str, *, lease_s: float) -> bool:
        """queued -> running for exactly one caller (one conditional UPDATE), with a lease of lease_s seconds."""
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.status == "queued",
                                                     jobs.c.cancel_requested.is_(False)))
                             .values(status="running", worker_id=worker_id, lease_until=time.time() + lease_s,
                                     attempts=jobs.c.attempts + 1)).rowcount
        return done == 1

    def heartbeat(self, job_id: str, worker_id: str, *, lease_s: float) -> bool:
        """Extend the lease; False when this worker lost the job (requeued, failed) or a cancel was requested."""
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.worker_id == worker_id,
                                                     jobs.c.status == "running", jobs.c.cancel_requested.is_(False)))
                             .values(lease_until=time.time() + lease_s)).rowcount
        return done == 1

    def finish(self, job_id: str, worker_id: str | None, *, status: str, fine_tuned_model: str | None = None,
               error: dict | None = None, trained_tokens: int | None = None) -> bool:
        cond = [jobs.c.id == job_id, jobs.c.status.not_in(TERMINAL)]
        if worker_id is not None:
            cond.append(jobs.c.worker_id == worker_id)
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(and_(*cond)).values(
                status=status, fine_tuned_model=fine_tuned_model, error=error, trained_tokens=trained_tokens,
                finished_at=int(time.time()), lease_until=None)).rowcount
        return done == 1

    def request_cancel(self, job_id: str, owner: str) -> dict | None:
        """A queued job is cancelled at once; a running one gets the flag and its worker stops at the next step."""
        job = self.get_job(job_id, owner)
        if job is None:
            return None
        with self.engine.begin() as c:
            c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.status == "queued"))
                      .values(status="cancelled", finished_at=int(time.time()), cancel_requested=True))
            c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.status == "running"))
                      .values(cancel_requested=True))
        self.add_event(job_id, "Cancellation requested", level="warn")
        return self.get_job(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        with self.engine.connect() as c:
            return bool(c.execute(select(jobs.c.cancel_requested).where(jobs.c.id == job_id)).scalar())

    def expired_leases(self, now: float | None = None) -> list[dict]:
        now = time.time() if now is None else now
        with self.engine.connect() as c:
            rows = c.execute(select(jobs).where(and_(jobs.c.status == "running", jobs.c.lease_until < now))).mappings()
            return [_job_object(r) for r in rows]

    def requeue(self, job_id: str, *, reason: str) -> bool:
        """running (lease expired) -> queued again; only the caller whose UPDATE matched re-enqueues it."""
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.status == "running",
                                                     jobs.c.lease_until < time.time()))
                             .values(status="queued", worker_id=None, lease_until=None, queued_at=time.time())).rowcount
        if done:
            self.add_event(job_id, f"Requeued: {reason}", level="warn", data={"reason": reason})
        return done == 1

    def release(self, job_id: str, worker_id: str, *, reason: str) -> bool:
        """The holder gives the job back (shutdown): running -> queued, for another worker to resume."""
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.worker_id == worker_id,
                                                     jobs.c.status == "running"))
                             .values(status="queued", worker_id=None, lease_until=None, queued_at=time.time())).rowcount
        if done:
            self.add_event(job_id, f"Requeued: {reason}", level="warn", data={"reason": reason})
        return done == 1

    def stale_queued(self, older_than_s: float) -> list[str]:
        """Queued jobs nobody claimed for `older_than_s` (their message was lost with a crashed process); each is
        returned to one caller only (its queued_at is bumped), who sends it again. A duplicate is harmless: claim
        lets one worker run it."""
        now, out = time.time(), []
        with self.engine.begin() as c:
            ids = [r[0] for r in c.execute(select(jobs.c.id).where(and_(
                jobs.c.status == "queued", jobs.c.cancel_requested.is_(False),
                jobs.c.queued_at < now - older_than_s)))]
            for job_id in ids:
                if c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.status == "queued",
                                                     jobs.c.queued_at < now - older_than_s))
                             .values(queued_at=now)).rowcount:
                    out.append(job_id)
        return out

    def fail(self, job_id: str, *, reason: str, code: str = "worker_lost") -> bool:
        with self.engine.begin() as c:
            done = c.execute(update(jobs).where(and_(jobs.c.id == job_id, jobs.c.status.not_in(TERMINAL)))
                             .values(status="failed", finished_at=int(time.time()), lease_until=None,
                                     error={"code": code, "message": reason, "param": None})).rowcount
        if done:
            self.add_event(job_id, f"Job failed: {reason}", level="error", data={"code": code})
        return done == 1

    # --- events and checkpoints ---------------------------------------------------------------------------

    def add_event(self, job_id: str, message: str, *, level: str = "info", type: str = "message",
                  data: dict | None = None) -> dict:
        values = dict(id=new_id("ftevent"), job_id=job_id, created_at=int(time.time()), level=level,
                      message=message, type=type, data=data)
        with self.engine.begin() as c:
            c.execute(insert(events).values(**values))
        return _event_object(values)

    def list_events(self, job_id: str, *, after: str | None = None, limit: int = 20) -> tuple[list[dict], bool]:
        return self._page(events, events.c.job_id == job_id, after, limit, _event_object)

    def add_checkpoint(self, job_id: str, *, step: int, metrics: dict, path: str, model_ref: str) -> dict:
        values = dict(id=new_id("ftckpt"), job_id=job_id, created_at=int(time.time()), step=step, metrics=metrics,
                      path=path, model_ref=model_ref)
        with self.engine.begin() as c:
            c.execute(insert(checkpoints).values(**values))
        return _checkpoint_object(values)

    def list_checkpoints(self, job_id: str, *, after: str | None = None, limit: int = 10) -> tuple[list[dict], bool]:
        return self._page(checkpoints, checkpoints.c.job_id == job_id, after, limit, _checkpoint_object)

    def _page(self, table, where, after, limit, shape):
        """Newest first, `limit` rows after the row with id `after` (OpenAI's cursor pagination), and has_more."""
        q = select(table).where(where).order_by(table.c.seq.desc())
        with self.engine.connect() as c:
            if after:
                # the anchor is looked up among this owner's (or job's) rows only: a foreign id answers like an
                # unknown one
                anchor = c.execute(select(table.c.seq).where(where, table.c.id == after)).scalar()
                if anchor is not None:
                    q = q.where(table.c.seq < anchor)
            rows = list(c.execute(q.limit(limit + 1)).mappings())
        return [shape(r) for r in rows[:limit]], len(rows) > limit


# --- OpenAI shapes -------------------------------------------------------------------------------------------


def _key_info(row) -> KeyInfo:
    return KeyInfo(row["owner"], row["max_jobs"], row["max_file_bytes"], row["role"] or "train",
                   key_id(row["key_hash"]))


def _file_object(r) -> dict:
    return {"id": r["id"], "object": "file", "bytes": r["bytes"], "created_at": r["created_at"],
            "filename": r["filename"], "purpose": r["purpose"], "status": r["status"],
            "status_details": r["status_details"], "tunesmith": r["tunesmith"]}


def _job_object(r) -> dict:
    spec = r["spec"] or {}
    hp = spec.get("hyperparameters") or {}
    return {
        "id": r["id"], "object": "fine_tuning.job", "created_at": r["created_at"], "error": r["error"],
        "fine_tuned_model": r["fine_tuned_model"], "finished_at": r["finished_at"],
        "hyperparameters": {"n_epochs": hp.get("n_epochs", "auto"), "batch_size": hp.get("batch_size", "auto"),
                            "learning_rate_multiplier": hp.get("learning_rate_multiplier", "auto")},
        "model": spec.get("model"), "organization_id": r["owner"], "result_files": [], "seed": spec.get("seed") or 0,
        "status": r["status"], "trained_tokens": r["trained_tokens"], "training_file": spec.get("training_file"),
        "validation_file": spec.get("validation_file"), "user_provided_suffix": spec.get("suffix"),
        "metadata": spec.get("metadata"), "method": {"type": "supervised"}, "estimated_finish": None,
        "integrations": [],
        "tunesmith": {"attempts": r["attempts"], "worker_id": r["worker_id"],
                      "cancel_requested": bool(r["cancel_requested"]), **(spec.get("tunesmith") or {})},
    }


def _event_object(r) -> dict:
    return {"id": r["id"], "object": "fine_tuning.job.event", "created_at": r["created_at"], "level": r["level"],
            "message": r["message"], "data": r["data"] or {}, "type": r["type"]}


def _checkpoint_object(r) -> dict:
    return {"id": r["id"], "object": "fine_tuning.job.checkpoint", "created_at": r["created_at"],
            "fine_tuned_model_checkpoint": r["model_ref"], "fine_tuning_job_id": r["job_id"],
            "metrics": {"step": float(r["step"]), **(r["metrics"] or {})}, "step_number": r["step"]}


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
