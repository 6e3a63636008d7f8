"""What a run trains on, recorded when it starts, so `--resume` cannot continue it on other data or settings.

    write_identity(checkpoint_dir, cfg, bundle)   # fresh run: checkpoints/run_identity.json
    check_identity(checkpoint_dir, cfg, bundle)   # resume: TrainingError naming what changed

The data stage reruns on resume, so an edited data file or a `--set` override would otherwise continue
optimizer state and weights on different splits (or end in a shape mismatch when the label count changed).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from tunesmith.config import Config, flatten
from tunesmith.io import atomic_write_json
from tunesmith.training.trainer import TrainingError

IDENTITY_FILE = "run_identity.json"
# Config keys that may change between a run's start and its resume: they do not touch the weights being trained.
RESUMABLE_KEYS = (
    "output_dir",  # where runs live; the run dir itself is what is resumed
    "data",  # file paths, formats, slice columns: the train/eval content hash below decides instead
    "registry",  # where the finished run is logged and registered
    "evaluation",  # how the final model is evaluated, after training
    "gates",  # what the final model must pass, after training
    "training.num_threads",  # CPU threads: speed only
    "training.keep_checkpoints",  # whether checkpoints/ stays after the run
    "training.save_total_limit",  # how many older checkpoints rotation keeps
)

_MISSING = object()  # a key one of the two configs does not have
_log = logging.getLogger(__name__)


class Bundle(Protocol):
    train: pd.DataFrame
    eval: pd.DataFrame
    labels: list[str]


def run_identity(cfg: Config, bundle: Bundle) -> dict[str, Any]:
    """The data fingerprint, the label list and the flattened config (minus RESUMABLE_KEYS) with its hash."""
    config = {k: v for k, v in flatten(cfg.model_dump(mode="json")).items() if not _resumable(k)}
    blob = json.dumps(config, sort_keys=True).encode()
    return {
        "data_fingerprint": data_fingerprint(bundle),
        "labels": list(bundle.labels),
        "config_hash": hashlib.sha256(blob).hexdigest(),
        "config": config,
        "ignored_config_keys": list(RESUMABLE_KEYS),
    }


def write_identity(checkpoint_dir: Path, cfg: Config, bundle: Bundle) -> Path:
    """Record what this fresh run trains on, atomically, before its first checkpoint."""
    return atomic_write_json(checkpoint_dir / IDENTITY_FILE, run_identity(cfg, bundle))


def check_identity(checkpoint_dir: Path, cfg: Config, bundle: Bundle) -> None:
    """Refuse to resume when the data, the labels or a training-relevant config key differ from the run's start.

    Raises:
        TrainingError: naming each change, with what to do.
    """
    path = checkpoint_dir / IDENTITY_FILE
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        _log.warning("%s is missing (a run started by an older tunesmith): cannot check that the data and "
                     "config are unchanged since the run started", path)
        return
    except ValueError as err:
        raise TrainingError(f"cannot resume: {path} is not valid JSON ({err}); start a new run") from None
    changes = identity_changes(stored, run_identity(cfg, bundle))
    if changes:
        raise TrainingError(
            f"cannot resume {checkpoint_dir.parent}: it started on other data or settings than this run has now:\n"
            + "".join(f"  - {c}\n" for c in changes)
            + "  hint: revert the change to continue this run, or start a new run (without --resume) "
            "to train with the new data and settings"
        )


def identity_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """One line per difference between two `run_identity` results: data, labels, then config keys."""
    changes = []
    if stored.get("data_fingerprint") != current["data_fingerprint"]:
        changes.append(
            f"data fingerprint: {_short(stored.get('data_fingerprint'))} -> {_short(current['data_fingerprint'])} "
            "(the data files, the split settings or the rows they keep changed)"
        )
    if stored.get("labels") != current["labels"]:
        changes.append(f"labels: {stored.get('labels')} -> {current['labels']}")
    old, new = stored.get("config") or {}, current["config"]
    for key in sorted(set(old) | set(new)):
        if _resumable(key) or old.get(key, _MISSING) == new.get(key, _MISSING):
            continue
        changes.append(f"config {key}: {_show(old.get(key, _MISSING))} -> {_show(new.get(key, _MISSING))}")
    return changes


def data_fingerprint(bundle: Bundle) -> str:
    """sha256 of exactly what training consumes: the train and eval texts and labels, in order.

    Not the data stage's fingerprint: that one also covers the test split and slice columns, which may change
    (a new evaluation slice, the same file under another path) without touching the weights being trained.
    """
    digest = hashlib.sha256()
    for name in ("train", "eval"):
        frame = getattr(bundle, name)
        digest.update(name.encode())
        digest.update(frame[["text", "label"]].astype(str).to_json(orient="values").encode())
    return digest.hexdigest()


def _resumable(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in RESUMABLE_KEYS)


def _show(value: Any) -> str:
    return "(not set)" if value is _MISSING else json.dumps(value)


def _short(fingerprint: Any) -> str:
    return str(fingerprint)[:12] if fingerprint else "(none)"
