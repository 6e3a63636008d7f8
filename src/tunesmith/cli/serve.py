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
    if jobs and config is None:
        fail("--jobs needs --config (its jobs: section says where the job store and queue are)")
    with input_errors():
        run_server(model, settings=settings, store=open_store(registry_cfg), jobs_config=cfg if jobs else None,
                   prices=cfg.cost if config is not None else None)


def run_server(name: str, *, settings, store=None, jobs_config=None, prices=None) -> None:
    """Run the server in the foreground until SIGINT/SIGTERM (which drains in-flight requests first).

    `jobs_config` (a Config): also serve the fine-tuning jobs API (files, jobs, events, checkpoints) on this app."""
    import uvicorn

    from tunesmith.registry import RegistryError, open_store
    from tunesmith.serving.state import alias_versions

    store = store or open_store()
    if "champion" not in alias_versions(store, name):  # also raises RegistryError naming the models that exist
        raise RegistryError(f"{name} has no champion to serve",
                            hint=f"promote a version first: `tunesmith models promote {name} --reason ...`")
    from tunesmith.serving import prediction_log_for
    from tunesmith.serving.app import create_app

    app = create_app(name, settings=settings, store=store, prediction_log=prediction_log_for(settings), prices=prices)
    if settings.review_page:
        import os

        from tunesmith.monitoring.predictions import default_url
        from tunesmith.review.web import mount_review

        mount_review(app, settings.predictions.url or default_url(), name,
                     token=os.environ.get(settings.auth_token_env) or None)
    if jobs_config is not None:
        from tunesmith.jobs.api import mount_jobs

        mount_jobs(app, jobs_config)  # chat and models stay the serving app's own
    uvicorn.run(app, host=settings.host, port=settings.port, timeout_graceful_shutdown=int(settings.shutdown_grace_s),
                log_level="info", access_log=False)
