"""What is registered, as plain dicts for `tunesmith models list` / `tunesmith models show NAME`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunesmith.registry.store import Store, resolve_store
from tunesmith.registry.versions import (
    CHALLENGER,
    CHAMPION,
    history_of,
    iso_time,
    list_versions,
    require_model,
)

if TYPE_CHECKING:
    from tunesmith.config import RegistryConfig


def list_models(*, store: Store | None = None, registry: RegistryConfig | None = None) -> list[dict]:
    """Every registered model: name, latest version, aliases, champion/challenger versions, last update."""
    store = resolve_store(store, registry)
    client = store.client
    models, token = [], None
    while True:
        page = client.search_registered_models(page_token=token)
        models.extend(page)
        token = page.token
        if not token:
            break
    rows = []
    for model in sorted(models, key=lambda m: m.name):
        latest = max((int(mv.version) for mv in model.latest_versions or []), default=None)
        aliases = {alias: int(v) for alias, v in sorted(model.aliases.items())}
        rows.append(
            {
                "name": model.name,
                "latest_version": latest,
                "aliases": aliases,
                "champion": aliases.get(CHAMPION),
                "challenger": aliases.get(CHALLENGER),
                "updated": iso_time(model.last_updated_timestamp),
                "description": model.description or "",
            }
        )
    return rows


def show_model(name: str, *, store: Store | None = None, registry: RegistryConfig | None = None) -> dict:
    """One registered model: its aliases, champion history and every version (newest first) with the
    version's tags (lineage), source run and that run's final metrics (`macro_f1`, `accuracy`, ...).

    Raises:
        RegistryError: no such registered model.
    """
    from mlflow.exceptions import MlflowException

    store = resolve_store(store, registry)
    client = store.client
    model = require_model(client, name)
    versions = []
    for info in list_versions(name, store=store):
        row = info.to_dict()
        row["metrics"] = {}
        if info.run_id:
            try:
                metrics = client.get_run(info.run_id).data.metrics
            except MlflowException:
                metrics = {}  # the run was deleted; the version still stands
            # final values only; the step-wise curves are the names with a "/" (train/loss, eval/macro_f1)
            row["metrics"] = {k: v for k, v in sorted(metrics.items()) if "/" not in k}
        versions.append(row)
    aliases = {alias: int(v) for alias, v in sorted(model.aliases.items())}
    return {
        "name": model.name,
        "description": model.description or "",
        "aliases": aliases,
        "champion": aliases.get(CHAMPION),
        "challenger": aliases.get(CHALLENGER),
        "champion_history": history_of(model),
        "updated": iso_time(model.last_updated_timestamp),
        "versions": versions,
    }


def audit_log(name: str, *, store: Store | None = None, registry: RegistryConfig | None = None) -> list[dict]:
    """Every audit entry of `name` (registry.audit), oldest first."""
    import json

    from tunesmith.registry.audit import PREFIX

    model = require_model(resolve_store(store, registry).client, name)
    out = []
    for key in sorted(k for k in model.tags if k.startswith(PREFIX)):
        try:
            out.append(json.loads(model.tags[key]))
        except ValueError:
            out.append({"at": key[len(PREFIX):], "action": "unreadable", "reason": model.tags[key][:200]})
    return out
