"""`tunesmith serve`: a registered model over HTTP.

Registered on the app by tunesmith.cli, in the order `tunesmith --help` lists them.
"""

from __future__ import annotations

import json
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
    engine: str = typer.Option(None, "--engine", help="Print the command that starts this engine (vllm) for the "
                               "champion (and challenger) and the serving.upstream that points at it; no server."),
    launch: bool = typer.Option(False, "--launch", help="With --engine: run that command here (a GPU machine)."),
    merged: bool = typer.Option(False, "--merged", help="With --engine: serve the merged model even where the "
                                "version kept its LoRA adapter (default: base + adapter, vLLM multi-LoRA)."),
    engine_host: str = typer.Option("127.0.0.1", "--engine-host", help="With --engine: the engine's bind address "
                                    "(0.0.0.0 when the front door runs on another machine)."),
    engine_port: int = typer.Option(8001, "--engine-port", help="With --engine: the first engine's port."),
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
    if engine is not None or launch:
        with input_errors(ValueError):
            commands = engine_commands(model, settings, open_store(registry_cfg), engine=engine or "vllm",
                                       merged=merged, host=engine_host, port=engine_port)
        if launch:
            start_engine(commands, settings)
        print_engine(commands, model, settings)
        return
    if jobs and config is None:
        fail("--jobs needs --config (its jobs: section says where the job store and queue are)")
    if settings.engine != "local":  # said now, in one line, not as a failed server start
        with input_errors(ValueError):
            check_engine(model, settings, open_store(registry_cfg))
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


def engine_commands(name: str, settings, store, *, engine: str, merged: bool, host: str, port: int) -> list[tuple]:
    """(argv, {version: the engine's name for it}) per engine process serving the champion (and challenger)."""
    from tunesmith.families import get as family
    from tunesmith.registry import model_dir_for
    from tunesmith.serving.models import detect_family
    from tunesmith.serving.state import alias_versions

    versions = alias_versions(store, name)  # raises RegistryError naming the models that exist
    wanted = sorted({v for role, v in versions.items() if role in ("champion", "challenger")
                     and not (role == "challenger" and versions.get("challenger_retired"))})
    if not wanted:
        raise ValueError(f"{name} has no champion or challenger to serve; promote a version first")
    specs, hooks = [], None
    for version in wanted:
        model_dir = model_dir_for(name, version, store=store)
        if model_dir is None:
            raise ValueError(f"{name} version {version} has no model files")
        hooks = family(detect_family(model_dir)).engine
        if hooks is None or hooks.launch is None:
            raise ValueError(f"{name} version {version} is a {detect_family(model_dir)} model; --engine serves "
                             "causal-lm models (tunesmith serves the others itself)")
        served_name = settings.upstream.model.format(name=name, version=version)
        specs.append({"model_dir": model_dir, "served_name": served_name, "version": version,
                      "adapter": None if merged else adapter_dir(store, name, version, model_dir)})
    by_name = {s["served_name"]: s["version"] for s in specs}
    return [(argv, {by_name[n]: n for n in names}) for argv, names in hooks.launch(specs, engine=engine, host=host,
                                                                                   port=port)]


def check_engine(name: str, settings, store) -> None:
    """Each version the server would load has an engine (serving.upstream), its API key is set, and its family
    generates through engines; ValueError naming the key otherwise."""
    from tunesmith.families import get as family
    from tunesmith.registry import model_dir_for
    from tunesmith.serving.models import detect_family
    from tunesmith.serving.state import alias_versions
    from tunesmith.serving.upstream import Upstream

    versions = alias_versions(store, name)
    rollout = settings.challenger or settings.shadow or settings.canary.percent > 0
    for role in ("champion", "challenger") if rollout else ("champion",):
        version = versions.get(role)
        model_dir = model_dir_for(name, version, store=store) if version is not None else None
        if model_dir is None:
            continue
        kind = detect_family(model_dir)
        if family(kind).engine is None:
            raise ValueError(f"serving.engine: {settings.engine} forwards generation to an engine; {name} version "
                             f"{version} is a {kind} model, which tunesmith serves itself: set serving.engine: local")
        Upstream.from_config(settings.upstream, name, version)


def adapter_dir(store, name: str, version: int, model_dir: Path) -> Path | None:
    """The LoRA adapter a version's run kept beside its merged model (the run's `adapter/` artifact), or None."""
    local = Path(model_dir).parent / "adapter"
    if (local / "adapter_config.json").exists():
        return local
    try:
        import mlflow.artifacts

        run_id = store.client.get_model_version(name, str(version)).run_id
        got = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="adapter", tracking_uri=store.tracking_uri,
                                                  dst_path=str(store.cache_dir / name / f"v{version}-adapter"))
    except Exception:  # no adapter logged (full fine-tuning) or not reachable: serve the merged model
        return None
    return Path(got) if (Path(got) / "adapter_config.json").exists() else None


def print_engine(commands: list[tuple], name: str, settings) -> None:
    """The engine commands, then the serving: section that points the front door at them."""
    import shlex

    from tunesmith.cli.common import console

    lines = ["# On the GPU machine (VLLM_API_KEY set to the key serving.upstream.api_key_env holds, if any):"]
    lines += [shlex.join(argv) for argv, _ in commands]

    def url(argv: list[str]) -> str:
        host = argv[argv.index("--host") + 1]
        return f"http://{'ENGINE_HOST' if host in ('0.0.0.0', '::') else host}:{argv[argv.index('--port') + 1]}/v1"

    urls = {version: url(argv) for argv, served in commands for version in served}
    lines += ["", f"# The front door: tunesmith serve --model {name} -c CONFIG, with:", "serving:",
              "  engine: openai-compatible", "  upstream:", f"    model: {json.dumps(settings.upstream.model)}"]
    if len(set(urls.values())) == 1:
        lines.append(f"    base_url: {next(iter(urls.values()))}")
    else:
        lines.append("    versions:")
        lines += [f"      {version}: {{base_url: {url}}}" for version, url in sorted(urls.items())]
    console.print("\n".join(lines), markup=False, highlight=False)


def start_engine(commands: list[tuple], settings) -> None:
    """Run the one engine command in this process's place (exec), the API key from serving.upstream.api_key_env."""
    import os
    import shutil

    if len(commands) != 1:
        fail(f"--launch runs one engine; these versions need {len(commands)} (merged models, or adapters on "
             "different bases): run each printed command (`--engine vllm` without --launch) on its GPU machine")
    argv = commands[0][0]
    if shutil.which(argv[0]) is None:
        fail(f"{argv[0]} is not installed here; on a GPU machine `pip install vllm`, or run the printed command "
             "(`--engine vllm` without --launch) where it is")
    env = dict(os.environ)
    key_env = settings.upstream.api_key_env
    if key_env and os.environ.get(key_env):
        env["VLLM_API_KEY"] = os.environ[key_env]  # vLLM's own variable: the key never shows on a command line
    os.execvpe(argv[0], argv, env)
