"""A local folder with a registered version's model files, for comparing against it or serving it.

    champion_dir = champion_model_dir("sentiment")   # None until something was promoted

Files in a local artifact store are used where they lie; anything else (a tracking server, s3, runs:/)
is downloaded once into `.tunesmith/cache/<name>/v<version>/`, atomically (temp dir + rename). The folder returned
holds the model files: a version's root, or the folder its MLmodel names (registry/mlflow_model.weights_dir).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tunesmith.registry.mlflow_model import weights_dir
from tunesmith.registry.store import RegistryError, Store, local_path, resolve_store
from tunesmith.registry.versions import CHAMPION, require_model

if TYPE_CHECKING:
    from tunesmith.config import RegistryConfig


def model_dir_for(
    name: str,
    alias_or_version: str | int = CHAMPION,
    *,
    store: Store | None = None,
    registry: RegistryConfig | None = None,
) -> Path | None:
    """The model dir of `name@alias` or `name` version N; None when the model or the alias does not exist.

    Raises:
        RegistryError: an explicit version number that the model does not have.
    """
    from mlflow.exceptions import MlflowException

    store = resolve_store(store, registry)
    client = store.client
    try:
        model = require_model(client, name)
    except RegistryError:
        return None
    if str(alias_or_version).isdigit():
        version = int(alias_or_version)
    elif alias_or_version in model.aliases:
        version = int(model.aliases[alias_or_version])
    else:
        return None
    try:
        uri = client.get_model_version_download_uri(name, str(version))
    except MlflowException:
        raise RegistryError(
            f"{name} has no version {version}", hint=f"see `tunesmith models show {name}`"
        ) from None
    local = local_path(uri)
    if local is not None and local.is_dir():
        return weights_dir(local)
    return weights_dir(_download(store, uri, store.cache_dir / name / f"v{version}"))


def champion_model_dir(
    name: str, *, store: Store | None = None, registry: RegistryConfig | None = None
) -> Path | None:
    """The current champion's model dir, or None when `name` has no champion yet."""
    return model_dir_for(name, CHAMPION, store=store, registry=registry)


def _download(store: Store, uri: str, dest: Path) -> Path:
    """Download `uri` into `dest` unless it is already there; a half-done download never shows up as `dest`."""
    if dest.is_dir():
        return dest  # versions are immutable, so a finished download stays valid
    import mlflow.artifacts

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        got = mlflow.artifacts.download_artifacts(
            artifact_uri=uri,
            dst_path=str(tmp),
            tracking_uri=store.tracking_uri,
            registry_uri=store.registry_uri,
        )
        try:
            os.replace(got, dest)
        except OSError:
            if not dest.is_dir():  # not a concurrent download that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
