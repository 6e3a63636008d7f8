"""`jobs:`: the fine-tuning jobs API (`tunesmith api`) and its workers (`tunesmith worker`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunesmith.config.base import StrictModel

# Safe by default: how hard and how long the job trains, not what it reads, runs or writes.
DEFAULT_TENANT_KEYS = (
    "seed",
    "training.epochs", "training.max_steps", "training.batch_size", "training.grad_accum",
    "training.learning_rate", "training.weight_decay", "training.warmup_ratio",
    "training.early_stopping_patience", "training.eval_steps",
    "method.lora.r", "method.lora.alpha", "method.lora.dropout",
    "model.max_length",
    "chat.train_on", "chat.max_new_tokens",
    "gates",  # added to the team's gates, never replacing them
)
# Never a tenant's, whatever jobs.tenant_keys says (`training` there still leaves out training.backend): these
# decide where weights and data go, what code runs and which files the worker reads.
NEVER = ("name", "output_dir", "registry", "jobs", "model.base", "model.init_from", "model.trust_remote_code",
         "model.allow_pickle_weights", "training.backend", "training.provider", "data.path", "data.train",
         "data.eval", "data.test", "evaluation.regression", "method.distill.unlabeled", "serving", "review",
         "monitoring", "retrain", "search", "cost", "evaluation.safety")


def covered(path: str, keys) -> bool:
    """True when `path` is one of `keys` or lies under one of them (`training` covers `training.epochs`)."""
    return any(path == k or path.startswith(k + ".") for k in keys)


class JobsConfig(StrictModel):
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
                                    "defaults); a job's `tunesmith.config` may override only jobs.tenant_keys")
    tenant_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_TENANT_KEYS),
                                   description="config key paths a job's tunesmith.config may set (a path covers the "
                                   "keys under it); gates are added to the team's, never replace them; name, "
                                   "output_dir, registry, jobs, model.base and data paths are never a tenant's")
    allowed_models: list[str] = Field(default_factory=lambda: ["builtin:*"],
                                      description="bases a job's `model` may name (fnmatch patterns: builtin:*, "
                                      "org/*, a local dir); a tenant's own fine-tuned models are always allowed")

    @field_validator("tenant_keys")
    @classmethod
    def _tenant_keys(cls, keys: list[str]) -> list[str]:
        never = [k for k in keys if covered(k, NEVER)]
        if never:
            raise ValueError(f"{never[0]}: never a tenant's key (it decides where weights or data go, what runs, "
                             "what the worker reads or the prices a run is charged at); jobs.tenant_keys may not "
                             f"name {', '.join(NEVER)}")
        return keys

    @model_validator(mode="after")
    def _redis_url(self) -> JobsConfig:
        if self.queue == "redis" and not self.redis_url:
            raise ValueError("redis_url: queue: redis needs redis_url (redis://host:6379/0)")
        return self
