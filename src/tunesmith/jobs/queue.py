"""The job queue: huey, on a SQLite file by default (no server) or on Redis for workers on many machines.

    enqueue(cfg, job_id)        # the API, after the job row is written
    work(cfg, stop=event)       # `tunesmith worker`: dequeue -> claim -> run, until stop is set

A message carries only the job id, serialized as JSON (never pickle: a broker's content is not trusted code). The
job's truth is the store: a worker claims a job before running it, so a duplicated delivery never runs it twice,
and every worker's loop looks for jobs whose lease ran out (their worker died) and requeues or fails them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from huey import RedisHuey, SqliteHuey
from huey.registry import Message
from huey.serializer import Serializer

from tunesmith.config import Config, JobsConfig

_log = logging.getLogger(__name__)
TASK_NAME = "tunesmith.run_job"
_context: dict = {}  # the worker process's config, store and stop flag (set by `work`)


class JsonSerializer(Serializer):
    """huey messages as JSON: a job id and huey's bookkeeping fields, nothing executable."""

    def _serialize(self, data):
        if isinstance(data, Message):
            return json.dumps({"message": list(data)}).encode("utf-8")
        return json.dumps({"value": data}).encode("utf-8")

    def _deserialize(self, data):
        obj = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
        if "message" in obj:
            fields = obj["message"]
            fields[6] = tuple(fields[6] or ())  # args
            return Message(*fields)
        return obj["value"]


def store_for(cfg: Config):
    from tunesmith.jobs.store import JobStore

    return JobStore(cfg.jobs.database, state_dir=cfg.jobs.state_dir)


def make_huey(jobs: JobsConfig):
    """The huey instance of `jobs:`, with the run-job task registered under one name."""
    common = {"results": False, "serializer": JsonSerializer(), "utc": True}
    if jobs.queue == "redis":
        huey = RedisHuey("tunesmith-jobs", url=jobs.redis_url, **common)
    else:
        Path(jobs.state_dir).mkdir(parents=True, exist_ok=True)
        huey = SqliteHuey("tunesmith-jobs", filename=str(Path(jobs.state_dir) / "queue.db"), **common)
    huey.run_job = huey.task(name=TASK_NAME)(_run_job)
    return huey


def enqueue(cfg: Config, job_id: str) -> None:
    huey = make_huey(cfg.jobs)
    huey.enqueue(huey.run_job.s(job_id))


def _run_job(job_id: str) -> None:
    from tunesmith.jobs.runner import run_job

    run_job(_context["cfg"], _context["store"], job_id, worker_id=_context["worker_id"], stop=_context["stop"],
            requeue=enqueue)


def reap(cfg: Config, store) -> list[str]:
    """Jobs whose worker died (lease ran out): requeue and re-enqueue them, or fail them, per `jobs.on_worker_lost`."""
    acted = []
    for job in store.expired_leases():
        attempts = job["tunesmith"]["attempts"]
        if cfg.jobs.on_worker_lost == "fail" or attempts >= cfg.jobs.max_attempts:
            why = (f"worker {job['tunesmith']['worker_id']} stopped heartbeating (lease of {cfg.jobs.lease_s:g}s ran "
                   "out)" + (f"; {attempts} of {cfg.jobs.max_attempts} attempts used" if attempts > 1 else ""))
            if store.fail(job["id"], reason=why):
                acted.append(job["id"])
        elif store.requeue(job["id"], reason=f"worker {job['tunesmith']['worker_id']} lost; resuming from the last "
                                             "complete checkpoint"):
            enqueue(cfg, job["id"])
            acted.append(job["id"])
    for job_id in store.stale_queued(older_than_s=max(4 * cfg.jobs.lease_s, 60.0)):
        enqueue(cfg, job_id)  # its message died with a crashed process (huey drops a message at dequeue)
        acted.append(job_id)
    return acted


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def work(cfg: Config, *, stop: threading.Event | None = None, poll_s: float = 0.5, max_jobs: int | None = None,
         wid: str | None = None) -> int:
    """Take jobs from the queue until `stop` is set (or `max_jobs` ran); returns the number of jobs executed."""
    stop = stop or threading.Event()
    huey, store = make_huey(cfg.jobs), store_for(cfg)
    _context.update(cfg=cfg, store=store, worker_id=wid or worker_id(), stop=stop)
    done, last_reap = 0, 0.0
    while not stop.is_set() and (max_jobs is None or done < max_jobs):
        if time.monotonic() - last_reap >= min(cfg.jobs.lease_s / 3, 5.0):
            reap(cfg, store)
            last_reap = time.monotonic()
        task = huey.dequeue()
        if task is None:
            stop.wait(poll_s)
            continue
        try:
            huey.execute(task)
        except Exception:  # the runner records every failure on the job; the worker keeps serving
            _log.exception("job task %s raised", task)
        done += 1
    return done
