"""Search-space plumbing for `tunesmith tune`: sample a trial's values, build its config, write the best one.

    values = suggest(trial, cfg.search.space)       # {"training.learning_rate": 3e-4, ...}
    trial_cfg = config_with(cfg, values, cfg.search.overrides)
    write_best_config(cfg, values, tune_dir / "best.yaml")   # `tunesmith run best.yaml` works as is
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tunesmith.config import Config, SearchParam, config_from_dict, flatten
from tunesmith.config.loading import portable_config, set_key  # noqa: F401 (set_key: re-exported)
from tunesmith.io import atomic_write_text


def suggest(trial, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """One value per searched key from an Optuna trial (log / int / stepped ranges, or categorical choices)."""
    values: dict[str, Any] = {}
    for key, p in space.items():
        if p.choices is not None:
            values[key] = trial.suggest_categorical(key, p.choices)
        elif p.is_int:
            values[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            values[key] = trial.suggest_float(key, float(p.low), float(p.high), step=p.step, log=p.log)
    return values


def current_values(cfg: Config, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """The config's own value for each searched key (enqueued as trial 0: the default run, under the trial budget)."""
    flat = flatten(cfg.model_dump(mode="json"))
    values = {}
    for key, p in space.items():
        value = flat.get(key)
        if p.choices is not None and value not in p.choices:
            continue  # outside the searched choices: TPE cannot take it, so the default is not enqueued for it
        if p.choices is None and (value is None or not p.low <= value <= p.high):
            continue
        values[key] = value
    return values


def config_with(cfg: Config, values: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> Config:
    """`cfg` with key paths replaced and no `search:` block; validated like a config file (errors name the key)."""
    raw = cfg.model_dump(mode="json")
    raw.pop("search", None)
    for key, value in {**(overrides or {}), **values}.items():
        set_key(raw, key, value)
    return config_from_dict(raw, source=cfg.source_path)


def best_config_yaml(cfg: Config, values: Mapping[str, Any], *, header: str = "") -> str:
    """The full config of the best trial: the original config (not the trial-only overrides) plus its values."""
    lines = "".join(f"# {line}\n" for line in header.splitlines())
    return lines + yaml.safe_dump(portable_config(config_with(cfg, values)), sort_keys=False)


def write_best_config(cfg: Config, values: Mapping[str, Any], path: str | Path, *, header: str = "") -> Path:
    return atomic_write_text(Path(path), best_config_yaml(cfg, values, header=header))
