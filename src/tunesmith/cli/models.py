"""`tunesmith models list|show|promote|rollback`: the registered models, their versions and aliases."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from tunesmith.cli.common import TrackingOpt, console, fail, input_errors, load_cli_config
from tunesmith.cli.output import get_field

models_app = typer.Typer(no_args_is_help=True, help="Registered models: versions, aliases, promote and rollback.")
ConfigOpt = typer.Option(None, "--config", "-c", help="Use the registry of this config (its registry.tracking_uri).")


def _where(tracking_uri: str | None, config: Path | None) -> dict:
    """The registry to talk to: --tracking-uri, else the config's registry block, else the embedded default."""
    from tunesmith.config import RegistryConfig

    if tracking_uri:
        return {"registry": RegistryConfig(tracking_uri=tracking_uri)}
    if config is not None:
        return {"registry": load_cli_config(config, []).registry}
    return {}


def _model_name(name: str) -> None:
    """A registered model name, or exit 2 with one line (no path, version or alias in it)."""
    from tunesmith.config.training import NAME_RE

    if not NAME_RE.fullmatch(name) or ".." in name:
        hint = " (give the version with --version)" if ":" in name else ""
        fail(f"model name {name!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit, no "
             f"'..', '/' or ':'{hint}; `tunesmith models list` shows the registered names")


@models_app.command("list")
def models_list(tracking_uri: str = TrackingOpt, config: Path = ConfigOpt) -> None:
    """Registered models with their champion and challenger versions."""
    from tunesmith import registry

    rows = registry.list_models(**_where(tracking_uri, config))
    table = Table("name", "latest", "champion", "challenger", "updated")
    for r in rows:
        aliases = r.get("aliases", {})
        table.add_row(r["name"], str(r.get("latest_version", "")), str(aliases.get("champion", "-")),
                      str(aliases.get("challenger", "-")), str(r.get("updated", "")))
    console.print(table if rows else "no registered models yet (tunesmith run CONFIG registers one)")


@models_app.command("show")
def models_show(name: str, tracking_uri: str = TrackingOpt, config: Path = ConfigOpt) -> None:
    """Every version of a model with its aliases, metrics and lineage tags."""
    from tunesmith import registry

    _model_name(name)

    with input_errors(registry.RegistryError, only=True):
        info = registry.show_model(name, **_where(tracking_uri, config))
    console.print_json(json.dumps(info, default=str))


ReasonOpt = typer.Option(..., "--reason", help="Why (required; kept in the model's audit trail: models history).")
ByOpt = typer.Option(None, "--by", help="Who does it (default: $USER).")


def _who(by: str | None) -> str:
    import getpass

    return by or getpass.getuser()


@models_app.command("promote")
def models_promote(
    name: str,
    version: str = typer.Option(None, "--version", help="Version to make champion (default: the challenger)."),
    reason: str = ReasonOpt,
    by: str = ByOpt,
    tracking_uri: str = TrackingOpt,
    config: Path = ConfigOpt,
) -> None:
    """Move the `champion` alias to the challenger (or --version)."""
    from tunesmith import registry

    _model_name(name)

    with input_errors(registry.RegistryError, only=True):
        v = registry.promote(name, version, **_where(tracking_uri, config), who=_who(by), reason=reason)
    console.print(f"{name}: champion -> version {get_field(v, 'version')}")


@models_app.command("rollback")
def models_rollback(name: str, reason: str = ReasonOpt, by: str = ByOpt, tracking_uri: str = TrackingOpt,
                    config: Path = ConfigOpt) -> None:
    """Move `champion` back to the version it pointed at before the last promote."""
    from tunesmith import registry

    _model_name(name)

    with input_errors(registry.RegistryError, only=True):
        v = registry.rollback(name, **_where(tracking_uri, config), who=_who(by), reason=reason)
    console.print(f"{name}: champion rolled back to version {get_field(v, 'version')}")


@models_app.command("retire")
def models_retire(
    name: str,
    reason: str = typer.Option(..., "--reason", help="Why (the version's tunesmith.rollback_reason tag and the "
                               "audit trail)."),
    by: str = ByOpt,
    tracking_uri: str = TrackingOpt,
    config: Path = ConfigOpt,
) -> None:
    """Take the challenger out of traffic now: drop its `challenger` alias and mark it rolled back, so no server loads
    it again (they drop it within serving.poll_interval_s). The champion is never touched."""
    from tunesmith import registry
    from tunesmith.serving.state import retire_current_challenger

    _model_name(name)
    with input_errors(registry.RegistryError, only=True):
        store = registry.resolve_store(None, _where(tracking_uri, config).get("registry"))
        challenger = retire_current_challenger(store, name, reason, who=_who(by))
    console.print(f"{name}: challenger version {challenger} retired ({reason}); servers drop it at their next poll")


@models_app.command("delete")
def models_delete(
    name: str,
    version: int = typer.Option(..., "--version", help="The version to delete (never the champion)."),
    reason: str = ReasonOpt,
    by: str = ByOpt,
    tracking_uri: str = TrackingOpt,
    config: Path = ConfigOpt,
) -> None:
    """Take a version out of use for good: no alias, never promoted or rolled back to again; its files and lineage
    stay in the registry. Audited."""
    from tunesmith import registry

    _model_name(name)
    with input_errors(registry.RegistryError, only=True):
        registry.delete_version(name, version, **_where(tracking_uri, config), who=_who(by), reason=reason)
    console.print(f"{name}: version {version} deleted ({reason})", markup=False)


@models_app.command("history")
def models_history(name: str, tracking_uri: str = TrackingOpt, config: Path = ConfigOpt) -> None:
    """The model's audit trail: every promote, rollback and retire (and a server's automatic rollback), with who,
    when and why, oldest first."""
    from tunesmith import registry

    _model_name(name)
    with input_errors(registry.RegistryError, only=True):
        entries = registry.audit_log(name, **_where(tracking_uri, config))
    if not entries:
        console.print(f"{name}: no audited changes yet")
        return
    from rich.markup import escape

    table = Table("when (UTC)", "who", "action", "version", "from", "why")
    for e in entries:  # who and why are people's words: never rich markup
        table.add_row(*(escape(str(e.get(k) if e.get(k) is not None else "-"))
                        for k in ("at", "who", "action", "version", "previous", "reason")))
    console.print(table)
