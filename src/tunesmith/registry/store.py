"""Where runs and model versions live: the MLflow tracking/registry URI and a client bound to it.

    mlflow ui --backend-store-uri sqlite:///.tunesmith/mlflow.db   # from the project dir: browse it all

The embedded default is a SQLite file under `<workdir>/.tunesmith/` with artifacts beside it, so nothing
needs a server; a config (`registry.tracking_uri`) or `MLFLOW_TRACKING_URI` points at a real one instead.
Every function here builds an explicit `MlflowClient`; nothing touches MLflow's global tracking URI.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tunesmith.config import RegistryConfig

# tunesmith works offline: MLflow's usage telemetry would reach for the network on import, and its
# download progress bars clutter CLI output. Both stay overridable from the environment.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

STATE_DIR = ".tunesmith"
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
CACHE_DIR = "cache"

_log = logging.getLogger(__name__)


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says what is wrong and what to do."""

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)


def tracking_uri(cfg_registry: RegistryConfig | None = None, workdir: Path | None = None) -> str:
    """The MLflow URI to use: `registry.tracking_uri`, else `MLFLOW_TRACKING_URI`, else the embedded SQLite file.

    Args:
        cfg_registry: the config's `registry` section (None: no config, e.g. `tunesmith models list`).
        workdir: the project dir holding `.tunesmith/` (default: the current directory).
    """
    if cfg_registry is not None and cfg_registry.tracking_uri:
        return cfg_registry.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = (workdir or Path.cwd()).resolve() / STATE_DIR / DB_NAME
    return f"sqlite:///{db}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative paths resolve against the current dir), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = unquote(urlparse(uri).path)[1:] or ":memory:"  # sqlite:///rel.db -> rel.db, sqlite:////abs -> /abs
    return None if path == ":memory:" else Path(path).resolve()


def local_path(uri: str) -> Path | None:
    """The local path of a plain path or `file:` URI, else None (s3:, runs:, mlflow-artifacts:, ...)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or re.fullmatch(r"[A-Za-z]", parsed.scheme):  # a plain path (or a Windows drive)
        return Path(uri)
    return None


def quiet_mlflow_logs() -> None:
    """Silence the per-call chatter of the SQLite store (table creation, alembic migrations)."""
    for name in ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow's SQLAlchemy models still use `noload`; harmless, and not ours to fix.
    warnings.filterwarnings(
        "ignore", message=r".*``noload`` loader strategy is deprecated", category=DeprecationWarning
    )


@dataclass(frozen=True)
class Store:
    """One MLflow tracking + registry location, and the project dir whose `.tunesmith/` holds caches."""

    tracking_uri: str
    registry_uri: str
    workdir: Path

    @cached_property
    def client(self) -> MlflowClient:
        quiet_mlflow_logs()
        from mlflow import MlflowClient

        db = sqlite_path(self.tracking_uri)
        if db is None:
            return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        db.parent.mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not its folder
        from filelock import FileLock

        # MLflow creates and migrates a new database on first use; two processes doing it at once (two job workers,
        # two tune workers) collide in alembic. One at a time: the second finds it ready.
        with FileLock(str(db) + ".init.lock", timeout=300):
            client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        return client

    @property
    def cache_dir(self) -> Path:
        """Where registered model files from remote stores are downloaded to."""
        return self.workdir / STATE_DIR / CACHE_DIR

    def artifact_location(self, experiment: str) -> str | None:
        """Artifact root for a new experiment: beside a SQLite db; None lets a server choose its own."""
        db = sqlite_path(self.tracking_uri)
        if db is None:
            return None
        safe = re.sub(r"[^\w.-]", "_", experiment).strip(".") or "experiment"
        return (db.parent / ARTIFACTS_DIR / safe).as_uri()


def open_store(cfg_registry: RegistryConfig | None = None, workdir: Path | None = None) -> Store:
    """The store a config (or, without one, the environment and the current dir) points at."""
    workdir = (workdir or Path.cwd()).resolve()
    uri = tracking_uri(cfg_registry, workdir)
    return Store(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri, workdir=workdir)


def resolve_store(store: Store | None = None, registry: RegistryConfig | None = None) -> Store:
    """`store` if given, else the one `registry` (a config's `registry` section, or None) points at."""
    return store or open_store(registry)


def ensure_experiment(store: Store, name: str) -> str:
    """The id of experiment `name`, created (with its artifact root) or restored if needed."""
    client = store.client
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, artifact_location=store.artifact_location(name))
    if exp.lifecycle_stage == "deleted":
        _log.warning("experiment %r was deleted; restoring it to log a new run", name)
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id
