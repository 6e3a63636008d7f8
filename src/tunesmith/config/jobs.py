"""`jobs:`: the fine-tuning jobs API (`tunesmith api`) and its workers (`tunesmith worker`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunesmith.config.base import _Strict


class JobsConfig(_Strict):
    database: str | None = Field(None, description="SQLAlchemy URL of the job store; default "
                                 "sqlite:///<state_dir>/jobs.db (use postgresql://... for workers on several hosts)")
    state_dir: str = Field(".tunesmith/jobs", description="uploaded files, each job's run folder, the SQLite queue")
    queue: Literal["sqlite", "redis"] = Field("sqlite", description="sqlite: huey's SqliteHuey, no server; redis: "
                                              "RedisHuey at redis_url, for many workers")
    redis_url: str | None = Field(None, description="redis://host:6379/0 when queue: redis")
    lease_s: float = Field(30.0, gt=0, description="a running job's lease; its worker renews it every lease_s / 3")
    on_worker_lost: Literal["requeue", "fail"] = Field("requeue", description="a job whose worker died (lease ran "
                                                       "out): requeue resumes it from its last complete checkpoint; "
                                                       "fail ends it failed with the reason")
    max_attempts: int = Field(2, ge=1, description="requeue: runs of a job at most, then it fails")
    max_file_bytes: int = Field(50 * 2**20, gt=0, description="default per-key upload limit")
    max_jobs: int = Field(10, ge=1, description="default per-key limit on unfinished jobs")
    base_config: str | None = Field(None, description="a tunesmith YAML every API job starts from (gates, training "
                                    "defaults); a job's `tunesmith.config` overrides it")

    @model_validator(mode="after")
    def _redis_url(self) -> JobsConfig:
        if self.queue == "redis" and not self.redis_url:
            raise ValueError("redis_url: queue: redis needs redis_url (redis://host:6379/0)")
        return self
