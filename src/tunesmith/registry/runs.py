"""Log one tunesmith run to MLflow: flattened config params, final metrics, training curves, reports, model files.

    log_run(cfg, run_dir=run_dir, params={}, metrics=report.flat_metrics(), artifacts=[...],
            model_dir=run_dir / "model", tags={}, log_history=result.log_history)

The model goes under the run's `model` artifact path as an MLflow Model (registry/mlflow_model.py): its own files
(safetensors weights, config and tokenizer files, never pickles) plus MLmodel, signature, input example and
environment files, so `mlflow.pyfunc.load_model("models:/NAME@champion")` loads a registered version.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tunesmith.config import Config
from tunesmith.config import flatten as flatten_keys
from tunesmith.registry.store import RegistryError, Store, ensure_experiment, open_store

MODEL_ARTIFACT_PATH = "model"
# What a model dir may ship: weights as safetensors, everything else as text (config, tokenizer, chat template).
# seen_texts.npy: uint64 hashes of the texts a model trained on, loaded only with allow_pickle=False.
MODEL_FILE_SUFFIXES = frozenset({".safetensors", ".json", ".txt", ".model", ".md", ".jinja", ".npy"})
MAX_KEY = 250  # MLflow's limit on param, metric and tag names
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
MAX_TAG_VALUE = 8000  # MLflow's limit on a run tag value
_BATCH_PARAMS = 100  # MLflow's per-request limits
_BATCH_METRICS = 1000
ORPHAN_AFTER_S = 6 * 3600  # logging takes minutes; a run RUNNING this long on another host has lost its process

_log = logging.getLogger(__name__)


def log_run(
    cfg: Config,
    *,
    run_dir: Path,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    artifacts: Iterable[Path] = (),
    model_dir: Path | None = None,
    tags: Mapping[str, Any] | None = None,
    log_history: list[dict] | None = None,
    store: Store | None = None,
) -> str:
    """Record a finished run in the experiment `cfg.registry.experiment` (default `cfg.name`).

    Args:
        cfg: the job config; logged as flattened params (`training.learning_rate`, ...).
        run_dir: the tunesmith run folder; its name becomes the MLflow run name.
        params: extra params (override config params with the same key).
        metrics: final metrics; non-finite or non-numeric values are skipped.
        artifacts: files (report.html, metrics.json, data_card.json) or folders logged at the root;
            missing ones are skipped with a warning.
        model_dir: the final model, logged under `model/` (safetensors + json/txt files only).
        tags: run tags (lineage, method, ...); values are stringified.
        log_history: the Trainer's `log_history`, logged as step-wise `train/*` and `eval/*` curves.
        store: where to log (default: `open_store(cfg.registry)`).

    Returns:
        The MLflow run id.
    """
    store = store or open_store(cfg.registry)
    client = store.client
    experiment_id = ensure_experiment(store, cfg.registry.experiment or cfg.name)
    fail_orphaned_runs(client, experiment_id)
    run_tags = {"tunesmith.run_dir": str(Path(run_dir).resolve()), **_holder_tags(), **(tags or {})}
    run = client.create_run(experiment_id, run_name=Path(run_dir).name, tags=_tag_values(run_tags))
    run_id = run.info.run_id
    try:
        _log_params(client, run_id, {**flatten(cfg.model_dump(mode="json")), **flatten(params or {})})
        _log_metrics(client, run_id, metric_entries(metrics or {}) + history_entries(log_history or []))
        for path in artifacts:
            _log_artifact(client, run_id, Path(path))
        if model_dir is not None:
            log_model_files(client, run_id, Path(model_dir))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def fail_orphaned_runs(client, experiment_id: str, *, now_ms: int | None = None) -> list[str]:
    """Mark FAILED the runs `log_run` left RUNNING when its process died mid-logging (kill -9, OOM, power loss).

    A run is orphaned when its holder (tags `tunesmith.host`, `tunesmith.pid`) is this host and that process is
    gone, or when it has been RUNNING for over ORPHAN_AFTER_S (its host cannot be asked). Returns their ids.
    """
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    host = socket.gethostname()
    orphaned = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        if "tunesmith.pid" not in tags:
            continue  # not a run log_run made (a study's parent run stays RUNNING between workers on purpose)
        same_host_dead = tags.get("tunesmith.host") == host and not _alive(int(tags["tunesmith.pid"]))
        if same_host_dead or now_ms - run.info.start_time > ORPHAN_AFTER_S * 1000:
            client.set_tag(run.info.run_id, "tunesmith.failure",
                           f"process {tags['tunesmith.pid']} on {tags.get('tunesmith.host')} stopped while logging")
            client.set_terminated(run.info.run_id, "FAILED")
            orphaned.append(run.info.run_id)
    if orphaned:
        _log.warning("marked %d run(s) left RUNNING by a dead process as FAILED: %s", len(orphaned), ", ".join(orphaned))
    return orphaned


def _holder_tags() -> dict[str, str]:
    return {"tunesmith.host": socket.gethostname(), "tunesmith.pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def flatten(tree: Mapping[str, Any]) -> dict[str, str]:
    """Config key paths as MLflow params: `{"training": {"epochs": 3}}` -> `{"training.epochs": "3"}`."""
    return {metric_name(k): _text(v)[:MAX_PARAM_VALUE] for k, v in flatten_keys(tree).items()}


def metric_name(name: str) -> str:
    """A name MLflow accepts: letters, digits, `_ - . / space`, no empty or `..` path parts, <= 250 chars."""
    name = re.sub(r"[^/\w.\- ]", "_", str(name))
    parts = [p for p in name.split("/") if p not in ("", ".", "..")]
    return "/".join(parts)[:MAX_KEY] or "unnamed"


def metric_entries(metrics: Mapping[str, Any], step: int = 0) -> list[tuple[str, float, int]]:
    """(name, value, step) for each finite numeric value; booleans count as 0/1."""
    entries = []
    for key, value in metrics.items():
        number = _finite(value)
        if number is not None:
            entries.append((metric_name(key), number, step))
    return entries


def history_entries(log_history: list[dict]) -> list[tuple[str, float, int]]:
    """Trainer log_history rows as curves: `loss` -> `train/loss`, `eval_macro_f1` -> `eval/macro_f1`."""
    entries = []
    for i, row in enumerate(log_history):
        step = int(row.get("step", i))
        for key, value in row.items():
            if key in ("step", "epoch"):
                continue
            name = f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"
            number = _finite(value)
            if number is not None:
                entries.append((metric_name(name), number, step))
    return entries


def log_model_files(
    client, run_id: str, model_dir: Path, artifact_path: str = MODEL_ARTIFACT_PATH
) -> list[str]:
    """Log a model dir's safetensors/json/txt files under `artifact_path`; returns the relative paths logged.

    Raises:
        RegistryError: the dir is missing or holds no `.safetensors` weights (and is no external model's record).
    """
    if not model_dir.is_dir():
        raise RegistryError(
            f"model dir not found: {model_dir}", hint="pass the run's model/ folder written by training"
        )
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and not _hidden_or_checkpoint(p, model_dir))
    kept = [p for p in files if p.suffix in MODEL_FILE_SUFFIXES]
    skipped = [p.relative_to(model_dir).as_posix() for p in files if p.suffix not in MODEL_FILE_SUFFIXES]
    external = (model_dir / "external_model.json").is_file()  # a provider-trained model: its weights live there
    if not external and not any(p.suffix == ".safetensors" for p in kept):
        raise RegistryError(
            f"{model_dir} has no .safetensors weights (found: {', '.join(skipped) or 'nothing'})",
            hint="save the model with save_pretrained(..., safe_serialization=True); tunesmith never ships pickles",
        )
    if skipped:
        _log.warning("not logging %d non-safetensors model files: %s", len(skipped), ", ".join(skipped[:10]))
    from tunesmith.registry.mlflow_model import MLMODEL, prepare

    with tempfile.TemporaryDirectory(prefix="tunesmith-mlmodel-") as tmp:
        layout = None if external else prepare(model_dir, Path(tmp))
        root = artifact_path if layout is None or layout.data == "." else f"{artifact_path}/{layout.data}"
        logged = []
        for path in kept:
            rel = path.relative_to(model_dir)
            dest = root if rel.parent == Path(".") else f"{root}/{rel.parent.as_posix()}"
            client.log_artifact(run_id, str(path), artifact_path=dest)
            logged.append(rel.as_posix())
        if layout is not None:  # MLmodel last: a version whose logging stopped partway never looks loadable
            for path in sorted(p for p in layout.files.rglob("*") if p.is_file() and p.name != MLMODEL):
                rel = path.relative_to(layout.files)
                dest = artifact_path if rel.parent == Path(".") else f"{artifact_path}/{rel.parent.as_posix()}"
                client.log_artifact(run_id, str(path), artifact_path=dest)
            client.log_artifact(run_id, str(layout.files / MLMODEL), artifact_path=artifact_path)
            layout.record(client, run_id, artifact_path)
            logged.append(MLMODEL)
    return logged


def _hidden_or_checkpoint(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return any(p.startswith(".") or p.startswith("checkpoint-") for p in parts)


def _log_artifact(client, run_id: str, path: Path) -> None:
    if path.is_dir():
        client.log_artifacts(run_id, str(path), artifact_path=path.name)
    elif path.is_file():
        client.log_artifact(run_id, str(path))
    else:
        _log.warning("artifact %s does not exist; not logged", path)


def _log_params(client, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), _BATCH_PARAMS):
        client.log_batch(run_id, params=items[i : i + _BATCH_PARAMS])


def _log_metrics(client, run_id: str, entries: list[tuple[str, float, int]]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(name, value, now, step) for name, value, step in entries]
    for i in range(0, len(items), _BATCH_METRICS):
        client.log_batch(run_id, metrics=items[i : i + _BATCH_METRICS])


def _tag_values(tags: Mapping[str, Any]) -> dict[str, str]:
    return {metric_name(k): _text(v)[:MAX_TAG_VALUE] for k, v in tags.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _finite(value: Any) -> float | None:
    if isinstance(value, str) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
