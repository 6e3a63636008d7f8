"""Run one fine-tuning job: claim it, build its tunesmith config, `pipeline.run` it, report as it goes.

    run_job(api_cfg, store, job_id, worker_id="host:pid", stop=threading.Event())

The job runs through the same pipeline as `tunesmith run`: data gates, training, evaluation against the base model,
gates, registration. Events stream to the store (steps with loss, eval metrics, checkpoints, the data gates and the
gate decision); each committed checkpoint is recorded. A heartbeat thread renews the lease; when it is lost (the
job was requeued or failed elsewhere), cancelled, or the worker is shutting down, the next training step raises
`JobInterrupted` and the job is left as its state says (cancelled, requeued for another worker, or untouched).
A job run again after its worker died resumes from the last complete checkpoint in its run folder.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from tunesmith.config import Config, ConfigError
from tunesmith.jobs.spec import job_config
from tunesmith.jobs.tenancy import tenant_message

log = logging.getLogger("tunesmith.jobs")


class JobInterrupted(Exception):
    """Training stopped on purpose: `reason` is cancelled, lease_lost or shutdown."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class Heartbeat(threading.Thread):
    """Renews the job's lease every lease_s / 3; sets `lost` when the store says this worker no longer holds it."""

    def __init__(self, store, job_id: str, worker_id: str, lease_s: float):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.store, self.job_id, self.worker_id, self.lease_s = store, job_id, worker_id, lease_s
        self.done, self.lost = threading.Event(), None

    def run(self):
        renewed = time.monotonic()
        while not self.done.wait(self.lease_s / 3):
            try:
                held = self.store.heartbeat(self.job_id, self.worker_id, lease_s=self.lease_s)
            except Exception:  # a locked or dropped database: retry until the lease would have run out
                held = None
            if held is None:
                if time.monotonic() - renewed >= self.lease_s * 0.9:
                    self.lost = "lease_lost"  # stop before another worker may take the job over
                    return
                continue
            if not held:
                self.lost = "cancelled" if self.store.cancel_requested(self.job_id) else "lease_lost"
                return
            renewed = time.monotonic()


class JobEvents(TrainerCallback):
    """Training progress as job events and checkpoint records; raises JobInterrupted when the job must stop."""

    shows_progress = True  # the events are the progress: no tqdm bars or printed log dicts in the worker

    def __init__(self, store, job_id: str, heartbeat: Heartbeat, stop: threading.Event):
        self.store, self.job_id, self.heartbeat, self.stop = store, job_id, heartbeat, stop
        self.last_loss = None

    def _check(self):
        if self.heartbeat.lost:
            raise JobInterrupted(self.heartbeat.lost)
        if self.stop.is_set():
            raise JobInterrupted("shutdown")

    def on_step_end(self, args, state, control, **kwargs):
        self._check()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        step = state.global_step
        if "loss" in logs:
            self.last_loss = float(logs["loss"])
            self.store.add_event(self.job_id, f"Step {step}/{state.max_steps}: training loss={float(logs['loss']):.4f}",
                                 type="metrics", data={"step": step, "total_steps": state.max_steps,
                                                       "train_loss": float(logs["loss"]),
                                                       "learning_rate": float(logs.get("learning_rate", 0.0))})
        elif "eval_loss" in logs:
            metrics = {k.removeprefix("eval_"): float(v) for k, v in logs.items()
                       if k.startswith("eval_") and isinstance(v, int | float)}
            self.store.add_event(self.job_id, f"Step {step}: validation loss={metrics.get('loss', float('nan')):.4f}",
                                 type="metrics", data={"step": step, **{f"valid_{k}": v for k, v in metrics.items()}})

    def on_save(self, args, state, control, **kwargs):
        # AtomicCheckpoints runs first (it is the first callback), so the checkpoint is committed by now.
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        valid = next((h.get("eval_loss") for h in reversed(state.log_history) if "eval_loss" in h), None)
        metrics = {"train_loss": self.last_loss, "valid_loss": valid}
        self.store.add_checkpoint(self.job_id, step=state.global_step, path=str(path),
                                  metrics={k: v for k, v in metrics.items() if v is not None},
                                  model_ref=f"{self.job_id}:ckpt-step-{state.global_step}")
        self.store.add_event(self.job_id, f"Checkpoint saved at step {state.global_step}", type="message",
                             data={"step": state.global_step})


def run_dir_for(api_cfg: Config, job_id: str) -> Path:
    return (Path(api_cfg.jobs.state_dir) / job_id / "run").resolve()


def run_job(api_cfg: Config, store, job_id: str, *, worker_id: str, stop: threading.Event | None = None,
            requeue=None) -> str:
    """Claim and run the job; returns its final status here (or `skipped` when another worker holds it)."""
    from tunesmith.pipeline import run
    from tunesmith.training.checkpoints import find_last_complete_checkpoint

    stop = stop or threading.Event()
    if not store.claim(job_id, worker_id, lease_s=api_cfg.jobs.lease_s):
        return "skipped"  # cancelled, finished, or already running elsewhere: a duplicate delivery
    job = store.get_job(job_id)
    attempt = job["tunesmith"]["attempts"]
    run_dir = run_dir_for(api_cfg, job_id)
    resume = run_dir.is_dir() and find_last_complete_checkpoint(run_dir / "checkpoints") is not None
    store.add_event(job_id, f"Fine-tuning job started on worker {worker_id} (attempt {attempt})"
                    + (", resuming from the last checkpoint" if resume else ""),
                    data={"worker_id": worker_id, "attempt": attempt, "resumed": resume})
    heartbeat = Heartbeat(store, job_id, worker_id, api_cfg.jobs.lease_s)
    heartbeat.start()
    shown = _tenant_paths(api_cfg, store, job, run_dir)
    try:
        ext = {k: v for k, v in (job.get("tunesmith") or {}).items()
               if k not in ("attempts", "worker_id", "cancel_requested")}  # the store's, not the tenant's
        cfg = job_config(api_cfg, {**job, "tunesmith": ext}, store, resolve_owned=True)
        from tunesmith.registry import check_owner

        check_owner(cfg.name, cfg.registry.owner, registry=cfg.registry)  # before any compute is spent
        from tunesmith.tuning.auto import search as auto_search

        outcome = run(cfg, resume=resume, run_dir=str(run_dir), callbacks=[JobEvents(store, job_id, heartbeat, stop)],
                      say=lambda line: _say(store, job_id, tenant_message(line, shown)),
                      search=auto_search if cfg.training.auto is not None else None)
    except JobInterrupted as exc:
        return _interrupted(api_cfg, store, job_id, worker_id, exc.reason, requeue)
    except Exception as exc:  # recorded, never lost; the tenant sees what they can act on, the operator all of it
        code, message = _classify(exc)
        log.error("job %s failed (%s): %s", job_id, code, exc, exc_info=code == "training_error")
        return _failed(store, job_id, worker_id, code, tenant_message(message, shown))
    finally:
        heartbeat.done.set()
    decision = outcome.decision
    for rule in decision.rules:
        measured = "not measured" if rule.value is None else f"{rule.value:.4g}"
        store.add_event(job_id, f"gate {'PASS' if rule.passed else 'FAIL'}: {rule.rule} (measured {measured})",
                        level="info" if rule.passed else "warn", type="message", data={"gate": _rule_dict(rule)})
    tokens = _trained_tokens(outcome.train_result.log_history)
    if not decision.passed:
        msg = f"the fine-tuned model failed its evaluation gates: {decision.summary}"
        store.finish(job_id, worker_id, status="failed", trained_tokens=tokens,
                     error={"code": "gates_failed", "message": msg, "param": None})
        store.add_event(job_id, msg, level="error", data={"failed_gates": [_rule_dict(r) for r in decision.failed]})
        return "failed"
    version = outcome.registered_version
    model = f"{cfg.name}:{version.version}" if version is not None else None
    store.finish(job_id, worker_id, status="succeeded", fine_tuned_model=model, trained_tokens=tokens)
    store.add_event(job_id, f"The job has successfully completed: {model}", data={"fine_tuned_model": model,
                    "report": tenant_message(str(outcome.run_dir / "report.html"), shown)})
    return "succeeded"


def _interrupted(api_cfg, store, job_id, worker_id, reason: str, requeue=None) -> str:
    if reason == "cancelled":
        store.finish(job_id, worker_id, status="cancelled")
        store.add_event(job_id, "Job cancelled", level="warn")
        return "cancelled"
    if reason == "shutdown":  # this worker stops: the job goes back to the queue and resumes elsewhere
        if store.release(job_id, worker_id, reason=f"worker {worker_id} shut down") and requeue is not None:
            requeue(api_cfg, job_id)  # the queue's enqueue: a message for the next worker
        return "requeued"
    return "lease_lost"  # another worker or the reaper owns the job now: leave it alone


def _classify(exc: Exception) -> tuple[str, str]:
    """(error code, the message a tenant may see) for an exception that ended a job."""
    from tunesmith.data.errors import DataError
    from tunesmith.hub import ModelNotFound
    from tunesmith.jobs.tenancy import TenantError
    from tunesmith.registry import RegistryError

    text = str(exc)
    if isinstance(exc, TenantError):
        return exc.code, text
    if isinstance(exc, RegistryError):
        return "model_not_owned" if "another owner" in text else "registry_error", text.splitlines()[0]
    if isinstance(exc, DataError) or "data check" in text.lower() or "leakage" in text.lower():
        # about the tenant's own rows: file:line and the reason
        return ("data_gates_failed" if "data check" in text.lower() or "leakage" in text.lower()
                else "invalid_training_file"), text
    if isinstance(exc, ConfigError):
        return "invalid_config", text
    if isinstance(exc, ModelNotFound | FileNotFoundError | OSError):
        return "invalid_config", "a model or file this job needs is missing or unusable on the worker; ask the " \
            "operator (the worker's log has the details under this job's id)"
    if isinstance(exc, ValueError):  # a check that refused the job: its first line, never what follows
        return "invalid_config", text.splitlines()[0][:500] if text else type(exc).__name__
    return "training_error", (f"training failed ({type(exc).__name__}); the operator's worker log has the details "
                              "under this job's id")


def _tenant_paths(api_cfg: Config, store, job: dict, run_dir: Path) -> dict[str, str]:
    """Server paths a tenant may see by another name: their files by filename, the run folder as <run>."""
    shown = {str(run_dir): "<run>"}
    for param in ("training_file", "validation_file"):
        fid = job.get(param)
        path = store.file_path(fid) if fid else None
        if path is not None:
            f = store.get_file(None, fid) or {}
            shown[str(path)] = shown[str(path.resolve())] = f"{f.get('filename', 'file')} ({fid})"
    shown[str(Path(api_cfg.jobs.state_dir).resolve())] = "<jobs>"
    return shown


def _failed(store, job_id, worker_id, code: str, message: str) -> str:
    store.finish(job_id, worker_id, status="failed", error={"code": code, "message": message[:4000], "param": None})
    store.add_event(job_id, f"Job failed ({code}): {message.splitlines()[0][:500]}", level="error",
                    data={"code": code})
    return "failed"


def _say(store, job_id: str, line: str) -> None:
    if line.startswith(("data:", "data check", "trained", "evaluating", "distill", "  quarantined")):
        store.add_event(job_id, line)


def _rule_dict(rule) -> dict:
    from dataclasses import asdict

    from tunesmith.io import json_safe

    return json_safe(asdict(rule))


def _trained_tokens(log_history: list[dict]) -> int | None:
    seen = [h["num_input_tokens_seen"] for h in log_history if "num_input_tokens_seen" in h]
    return int(seen[-1]) if seen else None
