"""tunesmith registry stage: log runs to MLflow, register versions with lineage, move champion/challenger aliases.

    run_id = log_run(cfg, run_dir=run_dir, metrics=metrics, artifacts=[...], model_dir=run_dir / "model")
    register_version(cfg.name, run_id=run_id, lineage=collect_lineage(cfg, data_fingerprint=fp))
    promote(cfg.name); rollback(cfg.name)

Every function takes `registry=cfg.registry` (or a ready `store=open_store(...)`); with neither, the
environment and the current dir decide (`MLFLOW_TRACKING_URI`, else `sqlite:///.tunesmith/mlflow.db`).
"""

from tunesmith.registry.catalog import audit_log, list_models, show_model
from tunesmith.registry.download import champion_model_dir, model_dir_for
from tunesmith.registry.lineage import collect_environment, collect_lineage
from tunesmith.registry.runs import log_run
from tunesmith.registry.store import RegistryError, Store, open_store, resolve_store, tracking_uri
from tunesmith.registry.versions import (
    CHALLENGER,
    CHAMPION,
    VersionInfo,
    champion_history,
    check_owner,
    delete_version,
    get_version,
    list_versions,
    promote,
    register_version,
    rollback,
)

__all__ = [
    "audit_log",
    "CHALLENGER",
    "CHAMPION",
    "RegistryError",
    "Store",
    "VersionInfo",
    "champion_history",
    "check_owner",
    "delete_version",
    "champion_model_dir",
    "collect_environment",
    "collect_lineage",
    "get_version",
    "list_models",
    "list_versions",
    "log_run",
    "model_dir_for",
    "open_store",
    "promote",
    "register_version",
    "resolve_store",
    "rollback",
    "show_model",
    "tracking_uri",
]
