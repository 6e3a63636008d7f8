"""`tunesmith serve`: a registered model over HTTP.

Registered on the app by tunesmith.cli, in the order `tunesmith --help` lists them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.cli.common import SetOpt, TrackingOpt, fail, input_errors, load_cli_config


def serve(
    model: str = typer.Option(..., "--model", "-m", help="Registered model name; serves its `champion` alias."),
    config: Path = typer.Option(None, "--config", "-c", help="A config whose `serving:` and `registry:` apply."),
    host: str = typer.Option(None, "--host", help="Bind address (serving.host; default 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (serving.port; default 8000)."),
    challenger: bool = typer.Option(None, "--challenger/--no-challenger", help="Also load the challenger."),
    canary: float = typer.Option(None, "--canary", help="Percent of traffic to the challenger (0-100)."),
    shadow: bool = typer.Option(None, "--shadow/--no-shadow", help="Copy requests to the challenger, never return it."),
    tracking_uri: str = TrackingOpt,
    overrides: list[str] = SetOpt,
    jobs: bool = typer.Option(False, "--jobs", help="Also serve the fine-tuning jobs API (jobs: of --config)."),
) -> None:
    """Serve a registered model over HTTP (task routes + OpenAI-compatible routes, canary, shadow, rollback)."""
    from pydantic import ValidationError

    from tunesmith.config import RegistryConfig, ServingConfig, apply_overrides
    from tunesmith.registry import open_store

    raw = {}
    registry_cfg = RegistryConfig(tracking_uri=tracking_uri) if tracking_uri else None
    if config is not None:
        cfg = load_cli_config(config, [])
        raw = cfg.serving.model_dump()
        registry_cfg = registry_cfg or cfg.registry
    flags = {"host": host, "port": port, "challenger": challenger, "shadow": shadow}
    raw.update({k: v for k, v in flags.items() if v is not None})
    if canary is not None:
        raw["canary"] = {**raw.get("canary", {}), "percent": canary}
        raw.setdefault("challenger", True)
    # --set takes the same key paths as a config file: --set serving.max_batch_size=32
    with input_errors(ValidationError, ValueError, only=True, prefix="serving settings: "):
        settings = ServingConfig.model_validate(apply_overrides({"serving": raw}, overrides)["serving"])
    from tunesmith.serving import serve as run_server

    if jobs and config is None:
        fail("--jobs needs --config (its jobs: section says where the job store and queue are)")
    with input_errors():
        run_server(model, settings=settings, store=open_store(registry_cfg), jobs_config=cfg if jobs else None)
