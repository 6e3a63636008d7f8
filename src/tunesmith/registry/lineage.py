"""Lineage of a model version: which data, config, code, base model and libraries made it, and its gate verdict.

    collect_lineage(cfg, data_fingerprint=bundle.fingerprint, base_model_path=path,
                    base_revision=None, gate_decision=decision.to_dict())

Every value is a string, ready to be a registry tag. No hostnames or user names are recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.registry.store import RegistryError

UNKNOWN = "unknown"
LIBRARIES = ("torch", "transformers", "peft", "trl", "sentence-transformers", "accelerate", "datasets", "mlflow",
             "tunesmith")
MAX_SUMMARY = 2000
# The tags every registered version carries (register_version fills missing ones with "unknown").
REQUIRED_KEYS = (
    "data_fingerprint",
    "config_hash",
    "git_commit",
    "git_dirty",
    "base_model",
    "base_model_revision",
    "gate_decision",
    "tunesmith_version",
)


def collect_lineage(
    cfg: Config,
    *,
    data_fingerprint: str,
    base_model_path: str | Path | None = None,
    base_revision: str | None = None,
    gate_decision: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Everything needed to say where a model came from, as flat string tags.

    Args:
        cfg: the job config (hashed with `cfg.fingerprint()`).
        data_fingerprint: `DataBundle.fingerprint`.
        base_model_path: where the base model was loaded from (a local dir, or a hub id).
        base_revision: the base model's revision (commit) if known; else `cfg.model.revision`, else
            the snapshot hash in a hub-cache path, else "unknown".
        gate_decision: `GateDecision.to_dict()` (`passed` and per-rule results); None: gates not run.
    """
    repo_dir = Path(cfg.source_path).resolve().parent if cfg.source_path else Path.cwd()
    commit, dirty = git_state(repo_dir)
    decision, summary = gate_summary(gate_decision)
    revision = base_revision or cfg.model.revision or _hub_snapshot(base_model_path) or UNKNOWN
    return {
        "data_fingerprint": data_fingerprint,
        "config_hash": cfg.fingerprint(),
        "git_commit": commit,
        "git_dirty": dirty,
        "base_model": cfg.model.base,
        "base_model_path": str(base_model_path) if base_model_path is not None else cfg.model.base,
        "base_model_revision": revision,
        "gate_decision": decision,
        "gate_summary": summary,
        "task": cfg.task,
        "method": cfg.method.kind.value,
        **collect_environment(),
    }


def git_state(path: Path) -> tuple[str, str]:
    """(commit sha, "true"/"false" for uncommitted changes) of the repo holding `path`; "unknown" outside git."""
    commit = _git(path, "rev-parse", "HEAD")
    if commit is None:
        return UNKNOWN, UNKNOWN
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    return commit, UNKNOWN if status is None else str(bool(status)).lower()


def gate_summary(decision: Mapping[str, Any] | None) -> tuple[str, str]:
    """("passed" | "failed" | "not_run", a one-line summary) from `GateDecision.to_dict()`."""
    if not decision:
        return "not_run", "no gates were evaluated"
    verdict = "passed" if decision.get("passed") else "failed"
    summary = decision.get("summary")
    rules = decision.get("rules")
    if not summary and isinstance(rules, list):
        failed = [r for r in rules if isinstance(r, Mapping) and not r.get("passed")]
        summary = f"{len(rules) - len(failed)}/{len(rules)} rules passed" if rules else "no rules configured"
        if failed:
            summary += "; failed: " + "; ".join(
                f"{r.get('rule')} (got {_number(r.get('value'))})" for r in failed
            )
    if not summary:
        failures = decision.get("failures") or decision.get("failed") or decision.get("reasons")
        summary = "; ".join(map(str, failures)) if isinstance(failures, list | tuple) else failures
    if not summary:
        summary = json.dumps(dict(decision), default=str, sort_keys=True)
    return verdict, str(summary)[:MAX_SUMMARY]


def collect_environment() -> dict[str, str]:
    """Python, library versions and hardware (no hostname): for lineage tags and bug reports."""
    return {
        "python_version": platform.python_version(),
        **{f"{lib}_version": library_version(lib) for lib in LIBRARIES},
        **hardware_summary(),
    }


def _number(value: Any) -> str:
    return "not measured" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def hardware_summary() -> dict[str, str]:
    """CPU count and accelerator, without hostnames: {"cpu_count": "16", "device": "cuda: NVIDIA H100 x1"}."""
    device = "cpu"
    torch = sys.modules.get("torch")  # training already imported it; don't pay the import just for lineage
    if torch is None:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        if torch.cuda.is_available():
            device = f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
    return {
        "cpu_count": str(os.cpu_count() or 0),
        "cpu_model": cpu_model(),
        "torch_threads": str(torch.get_num_threads()) if torch is not None else UNKNOWN,  # CPU results depend on it
        "device": device,
        "platform": f"{sys.platform}-{platform.machine()}",
    }


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or UNKNOWN


def _hub_snapshot(path: str | Path | None) -> str | None:
    """The commit hash in a Hugging Face cache path (`.../snapshots/<sha>/`), if it is one."""
    m = re.search(r"[\\/]snapshots[\\/]([0-9a-f]{40})(?:[\\/]|$)", str(path or ""))
    return m.group(1) if m else None


def _git(path: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def weights_sha256(model_dir: str | Path) -> str:
    """sha256 over the model dir's safetensors files (names and bytes, in name order)."""
    h = hashlib.sha256()
    files = sorted(Path(model_dir).rglob("*.safetensors"))
    if not files:
        raise RegistryError(f"{model_dir}: no .safetensors weights to hash")
    for path in files:
        h.update(path.relative_to(model_dir).as_posix().encode())
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
