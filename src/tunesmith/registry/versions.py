"""Registered model versions and the two aliases that matter: `challenger` (newest candidate) and `champion` (serving).

    register_version("sentiment", run_id=run_id, lineage=lineage)   # -> version N, alias challenger
    promote("sentiment")                                              # champion := challenger
    rollback("sentiment")                                             # champion := the previous champion

Promoting moves `champion` to the version and removes `challenger` from it (a version is one or the other).
Each promotion appends the champion it replaced to the registered-model tag `champion_history` (a JSON list
of versions), which is what `rollback` pops. Alias moves are not transactional across processes: run one
promote/rollback at a time per model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tunesmith.registry.lineage import REQUIRED_KEYS, UNKNOWN
from tunesmith.registry.runs import MODEL_ARTIFACT_PATH
from tunesmith.registry.store import RegistryError, Store, resolve_store

if TYPE_CHECKING:
    from tunesmith.config import RegistryConfig

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
MAX_HISTORY = 100  # keeps the tag small; nobody rolls back 100 promotions
DELETED_TAG = "tunesmith.deleted"  # a deleted version's {at, who, reason}: never promoted or rolled back to again


@dataclass
class VersionInfo:
    """One registered model version, as plain data."""

    name: str
    version: int
    run_id: str | None
    source: str
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    created: str = ""  # ISO-8601, UTC

    def to_dict(self) -> dict:
        return asdict(self)


def register_version(
    cfg_name: str,
    *,
    run_id: str,
    model_artifact_path: str = MODEL_ARTIFACT_PATH,
    lineage: Mapping[str, Any] | None = None,
    description: str | None = None,
    store: Store | None = None,
    registry: RegistryConfig | None = None,
) -> VersionInfo:
    """Register the run's model files as a new version of `cfg_name` and point `challenger` at it.

    The registered model is created on first use. Lineage entries become version tags (non-strings as
    JSON); the keys in `lineage.REQUIRED_KEYS` are always present ("unknown" when not given).

    Raises:
        RegistryError: the run does not exist, did not finish (status other than FINISHED), or has no
            `.safetensors` weights under `model_artifact_path`.
    """
    from mlflow.exceptions import MlflowException

    store = resolve_store(store, registry)
    client = store.client
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(
            f"no MLflow run {run_id!r}: {exc.message}", hint="pass the id log_run returned"
        ) from None
    _require_registrable(client, run, model_artifact_path)
    owner = registry.owner if registry is not None else None
    _ensure_registered_model(client, cfg_name, owner)
    tags = {key: UNKNOWN for key in REQUIRED_KEYS}
    tags.update(
        {str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in (lineage or {}).items()}
    )
    # The resolved artifact URI (not runs:/...) so the version resolves without MLflow's global client state.
    source = f"{run.info.artifact_uri.rstrip('/')}/{model_artifact_path}"
    mv = client.create_model_version(
        cfg_name, source=source, run_id=run_id, tags=tags, description=description
    )
    client.set_registered_model_alias(cfg_name, CHALLENGER, str(mv.version))
    return get_version(cfg_name, int(mv.version), store=store)


def promote(
    name: str,
    version: int | str | None = None,
    *,
    store: Store | None = None,
    registry: RegistryConfig | None = None,
    who: str | None = None,
    reason: str | None = None,
) -> VersionInfo:
    """Make `version` (default: the current challenger) the champion; returns the new champion. With `reason` (the
    CLI and the console always give one) the change is added to the model's audit trail (registry.audit).

    Raises:
        RegistryError: no such model or version, or no challenger to promote.
    """
    store = resolve_store(store, registry)
    client = store.client
    model = require_model(client, name)
    if version is None:
        if CHALLENGER not in model.aliases:
            raise RegistryError(
                f"{name} has no challenger to promote",
                hint=f"register a new version first, or name one: `tunesmith models promote {name} --version N "
                "--reason ...`",
            )
        version = model.aliases[CHALLENGER]
    target = _existing_version(client, name, version)
    _refuse_deleted(client, name, target, "promote")
    current = model.aliases.get(CHAMPION)
    if reason is not None:  # checked before anything moves: an unexplained promote changes nothing
        from tunesmith.registry.audit import record

        record(store, name, "promote", who=who or "unknown", reason=reason, version=target,
               previous=int(current) if current is not None else None)
    if current is not None and int(current) != target:
        history = history_of(model)[-(MAX_HISTORY - 1) :] + [int(current)]
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    client.set_registered_model_alias(name, CHAMPION, str(target))
    if model.aliases.get(CHALLENGER) is not None and int(model.aliases[CHALLENGER]) == target:
        client.delete_registered_model_alias(name, CHALLENGER)
    return get_version(name, target, store=store)


def rollback(name: str, *, store: Store | None = None, registry: RegistryConfig | None = None,
             who: str | None = None, reason: str | None = None) -> VersionInfo:
    """Move `champion` back to the champion before it; returns the restored champion. With `reason`, audited.

    Versions deleted since they were champion are skipped.

    Raises:
        RegistryError: no such model, or no earlier champion to return to.
    """
    from mlflow.exceptions import MlflowException

    store = resolve_store(store, registry)
    client = store.client
    model = require_model(client, name)
    history = history_of(model)
    current = model.aliases.get(CHAMPION)
    while history:
        previous = history.pop()
        try:
            mv = client.get_model_version(name, str(previous))
        except MlflowException:
            continue  # deleted since; fall back further
        if DELETED_TAG in (mv.tags or {}):
            continue
        if reason is not None:
            from tunesmith.registry.audit import record

            record(store, name, "rollback", who=who or "unknown", reason=reason, version=previous,
                   previous=int(current) if current is not None else None)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
        client.set_registered_model_alias(name, CHAMPION, str(previous))
        return get_version(name, previous, store=store)
    now = f"version {current} is champion" if current is not None else "there is no champion"
    raise RegistryError(
        f"nothing to roll back to for {name}: {now} and no earlier champion is recorded",
        hint=f"promote a specific version instead: `tunesmith models promote {name} --version N --reason ...`",
    )


def delete_version(name: str, version: int | str, *, who: str, reason: str, store: Store | None = None,
                   registry: RegistryConfig | None = None) -> VersionInfo:
    """Take a version out of use for good: it loses the challenger alias, is marked deleted (DELETED_TAG: never
    promoted or rolled back to again) and the deletion is audited. Its files and lineage stay in the registry.

    Raises:
        RegistryError: no such version, no reason, or it is the champion (promote or roll back first).
    """
    from tunesmith.registry.audit import record

    store = resolve_store(store, registry)
    client = store.client
    model = require_model(client, name)
    target = _existing_version(client, name, version)
    if model.aliases.get(CHAMPION) is not None and int(model.aliases[CHAMPION]) == target:
        raise RegistryError(f"{name} version {target} is the champion and serves traffic: it cannot be deleted",
                            hint=f"promote another version or roll back first (`tunesmith models rollback {name} "
                                 "--reason ...`)")
    _refuse_deleted(client, name, target, "delete")
    entry = record(store, name, "delete", who=who, reason=reason, version=target)
    if model.aliases.get(CHALLENGER) is not None and int(model.aliases[CHALLENGER]) == target:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_model_version_tag(name, str(target), DELETED_TAG,
                                 json.dumps({"at": entry["at"], "who": entry["who"], "reason": entry["reason"]}))
    return get_version(name, target, store=store)


def _refuse_deleted(client, name: str, version: int, action: str) -> None:
    tags = client.get_model_version(name, str(version)).tags or {}
    if DELETED_TAG in tags:
        raise RegistryError(f"cannot {action} {name} version {version}: it was deleted ({tags[DELETED_TAG][:300]})",
                            hint="register a new version instead")


def get_version(
    name: str, version: int | str, *, store: Store | None = None, registry: RegistryConfig | None = None
) -> VersionInfo:
    """One version of a registered model, with its aliases and tags."""
    store = resolve_store(store, registry)
    client = store.client
    model = require_model(client, name)
    number = _existing_version(client, name, version)
    mv = client.get_model_version(name, str(number))
    return _info(mv, _aliases_by_version(model).get(number, []))


def list_versions(
    name: str, *, store: Store | None = None, registry: RegistryConfig | None = None
) -> list[VersionInfo]:
    """All versions of a registered model, newest first."""
    store = resolve_store(store, registry)
    client = store.client
    model = require_model(client, name)
    by_version = _aliases_by_version(model)
    versions = [_info(mv, by_version.get(int(mv.version), [])) for mv in _search_versions(client, name)]
    return sorted(versions, key=lambda v: v.version, reverse=True)


def champion_history(
    name: str, *, store: Store | None = None, registry: RegistryConfig | None = None
) -> list[int]:
    """Former champions, oldest first (what `rollback` walks back through)."""
    return history_of(require_model(resolve_store(store, registry).client, name))


# --- helpers -------------------------------------------------------------------------------------------


def _require_registrable(client, run, model_artifact_path: str) -> None:
    """A version must come from a run that finished logging and shipped safetensors weights."""
    run_id, status = run.info.run_id, run.info.status
    if status != "FINISHED":
        why = {
            "RUNNING": "it is still being logged, or the process logging it died",
            "SCHEDULED": "it has not started",
            "FAILED": "logging it failed partway, so its files may be incomplete",
            "KILLED": "it was killed, so its files may be incomplete",
        }.get(status, "only finished runs are complete")
        raise RegistryError(
            f"run {run_id} has status {status}, not FINISHED: {why}",
            hint="register a run that log_run finished; to ship this model, log the run again",
        )
    files = _artifact_files(client, run_id, model_artifact_path)
    external = any(path.endswith("external_model.json") for path in files)  # a provider-trained model
    if not external and not any(path.endswith(".safetensors") for path in files):
        found = ", ".join(sorted(files)[:10]) or "nothing"
        raise RegistryError(
            f"run {run_id} has no .safetensors weights under artifact path {model_artifact_path!r} (found: {found})",
            hint="log the model with log_run(..., model_dir=run_dir / 'model'), which ships safetensors only",
        )


def _artifact_files(client, run_id: str, path: str, depth: int = 4) -> list[str]:
    """Paths of the files under an artifact path, `depth` folders deep (model dirs are flat or one level)."""
    files = []
    for info in client.list_artifacts(run_id, path):
        if not info.is_dir:
            files.append(info.path)
        elif depth > 0:
            files.extend(_artifact_files(client, run_id, info.path, depth - 1))
    return files


OWNER_TAG = "tunesmith.owner"


def check_owner(name: str, owner: str | None, *, store: Store | None = None,
                registry: RegistryConfig | None = None) -> None:
    """RegistryError when `owner` may not add a version to `name` (it exists and another owner, or the operator
    without an owner, created it). No owner (the operator's own runs) may add to any model."""
    _owner_check((store or resolve_store(None, registry)).client, name, owner)


def _owner_check(client, name: str, owner: str | None) -> bool:
    """True when `name` exists (and `owner` may add to it); raises RegistryError when it may not."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    if owner is not None and (model.tags or {}).get(OWNER_TAG) != owner:
        raise RegistryError(f"the registered model {name!r} belongs to another owner; no version was added",
                            hint="a tenant's models are named ft-<owner>-...; choose another suffix")
    return True


def _ensure_registered_model(client, name: str, owner: str | None = None) -> None:
    from mlflow.exceptions import MlflowException

    if _owner_check(client, name, owner):
        return
    try:
        client.create_registered_model(name, description=f"tunesmith model {name}",
                                       tags={OWNER_TAG: owner} if owner else None)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        _owner_check(client, name, owner)  # created by someone else in between: theirs, or ours


def require_model(client, name: str):
    """The registered model `name`, or a RegistryError naming the ones that exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    known = sorted(m.name for m in client.search_registered_models(max_results=50))
    raise RegistryError(
        f"no registered model named {name!r} (registered: {', '.join(known) or 'none'})",
        hint="list them with `tunesmith models list`; a passing `tunesmith run CONFIG` registers one",
    ) from None


def _existing_version(client, name: str, version: int | str) -> int:
    from mlflow.exceptions import MlflowException

    try:
        number = int(version)
        client.get_model_version(name, str(number))
        return number
    except (ValueError, MlflowException):
        known = sorted(int(mv.version) for mv in _search_versions(client, name))
        raise RegistryError(
            f"{name} has no version {version!r} (versions: {', '.join(map(str, known)) or 'none'})",
            hint=f"see them with `tunesmith models show {name}`",
        ) from None


def _search_versions(client, name: str) -> list:
    versions, token = [], None
    while True:
        page = client.search_model_versions(f"name = '{name}'", page_token=token)
        versions.extend(page)
        token = page.token
        if not token:
            return versions


def _aliases_by_version(model) -> dict[int, list[str]]:
    """{version: [aliases]}; search results leave ModelVersion.aliases empty, the registered model has them."""
    out: dict[int, list[str]] = {}
    for alias, version in sorted(model.aliases.items()):
        out.setdefault(int(version), []).append(alias)
    return out


def history_of(model) -> list[int]:
    """The former champions recorded on a registered model, oldest first."""
    try:
        return [int(v) for v in json.loads(model.tags.get(HISTORY_TAG, "[]"))]
    except (TypeError, ValueError):
        return []


def _info(mv, aliases: list[str]) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=int(mv.version),
        run_id=mv.run_id,
        source=mv.source,
        aliases=list(aliases),
        tags=dict(mv.tags or {}),
        description=mv.description or "",
        created=iso_time(mv.creation_timestamp),
    )


def iso_time(millis: int | None) -> str:
    if not millis:
        return ""
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).isoformat(timespec="seconds")
