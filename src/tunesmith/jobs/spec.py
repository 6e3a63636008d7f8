"""An API job -> the tunesmith Config it runs with.

The config starts from `jobs.base_config` (a team's YAML: gates, data checks, training defaults), then the job's
`tunesmith.config` extension, then the OpenAI fields: `model` -> model.base, the uploaded files -> data (the
validation file is the test split the gates are measured on; without one tunesmith splits the training file),
`hyperparameters` (n_epochs, batch_size, learning_rate_multiplier x the config's learning rate), `seed`, and a
registry name `ft-<base>[-<suffix>]`. Errors name the config key path (ConfigError).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tunesmith.config import Config, config_from_dict

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def default_name(model: str, suffix: str | None) -> str:
    base = _NAME_BAD.sub("-", Path(str(model).removeprefix("builtin:")).name).strip("-.") or "model"
    name = f"ft-{base}" + (f"-{_NAME_BAD.sub('-', suffix).strip('-.')}" if suffix else "")
    return name[:100]


def deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in (b or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def job_config(api_cfg: Config, job: dict, store) -> Config:
    """The job's Config (raises ConfigError with key paths, or FileNotFoundError for a file that disappeared)."""
    raw: dict = {}
    if api_cfg.jobs.base_config:
        path = api_cfg.resolve_path(api_cfg.jobs.base_config)
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    ext = job.get("tunesmith") or {}
    raw = deep_merge(raw, ext.get("config") or {})
    raw.setdefault("task", "causal-lm")
    raw["name"] = ext.get("name") or raw.get("name") or default_name(job["model"], job.get("user_provided_suffix"))
    raw["model"] = {**(raw.get("model") or {}), "base": job["model"]}
    train = store.file_path(job["training_file"])
    if train is None or not train.is_file():
        raise FileNotFoundError(f"training_file {job['training_file']} is no longer stored")
    data = {k: v for k, v in (raw.get("data") or {}).items() if k not in ("path", "train", "eval", "test")}
    if job.get("validation_file"):
        data.update(train=str(train), test=str(store.file_path(job["validation_file"])))
    else:
        data["path"] = str(train)
    data.setdefault("format", "jsonl")
    raw["data"] = data
    raw.setdefault("output_dir", str(Path(api_cfg.jobs.state_dir).resolve() / "runs"))
    raw.setdefault("registry", api_cfg.registry.model_dump(mode="json"))
    if job.get("seed"):
        raw["seed"] = int(job["seed"])
    hp = job.get("hyperparameters") or {}
    training = dict(raw.get("training") or {})
    if isinstance(hp.get("n_epochs"), int | float):
        training["epochs"] = hp["n_epochs"]
    if isinstance(hp.get("batch_size"), int):
        training["batch_size"] = hp["batch_size"]
    raw["training"] = training
    cfg = config_from_dict(raw, source="job config")
    mult = hp.get("learning_rate_multiplier")
    if isinstance(mult, int | float):
        raw["training"]["learning_rate"] = cfg.training.learning_rate * float(mult)
        cfg = config_from_dict(raw, source="job config")
    return cfg
