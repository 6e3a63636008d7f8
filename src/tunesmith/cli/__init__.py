"""The tunesmith command line: one verb per stage, all driven by the same YAML config.

    tunesmith run examples/sentiment/config.yaml --set training.epochs=1

Exit codes: 0 done, 1 a gate failed, 2 bad input (config, data, model reference).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from tunesmith.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_GATE_FAILED,
    ConfigArg,
    ResumeOpt,
    RunDirOpt,
    SetOpt,
    TrackingOpt,
    console,
    err,
    fail,
    input_errors,
    load_cli_config,
    say,
)
from tunesmith.cli.output import (
    get_field,
    print_data_report,
    print_monitor,
    print_outcome,
    print_reproduction,
    print_tune_result,
)
from tunesmith.config import Config

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])
models_app = typer.Typer(no_args_is_help=True, help="Registered models: versions, aliases, promote and rollback.")
app.add_typer(models_app, name="models")


@app.command()
def validate(
    config: Path = ConfigArg,
    config_only: bool = typer.Option(False, "--config-only", help="Only check the config and print it resolved."),
    overrides: list[str] = SetOpt,
) -> None:
    """Check the config and the data (schema, bad rows, splits); write the data card."""
    cfg = load_cli_config(config, overrides)
    if config_only:
        console.print(cfg.to_yaml(), highlight=False, markup=False)
        return
    from tunesmith.data import DataChecksFailed, prepare_data
    from tunesmith.pipeline import new_run_dir, removed_if_unused

    with input_errors():
        try:
            with console.status("validating data"), removed_if_unused(new_run_dir(cfg)) as out:
                bundle = prepare_data(cfg, out)
        except DataChecksFailed as exc:
            print_data_report(exc.report.to_dict())  # every finding, then the violations and exit 2
            fail(str(exc))
    print_data_report(bundle.report.to_dict())


@app.command()
def train(
    config: Path = ConfigArg,
    resume: bool = ResumeOpt,
    run_dir: str = RunDirOpt,
    overrides: list[str] = SetOpt,
    launcher: str = typer.Option("none", "--launcher", help="none | torchrun | accelerate: run N processes with DDP "
                                 "(gloo on CPU); training.batch_size is per process."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes to launch (with --launcher)."),
    accelerate_config: Path = typer.Option(None, "--accelerate-config", help="An accelerate config file (FSDP, "
                                           "DeepSpeed; see docs/distributed.md) for --launcher accelerate."),
) -> None:
    """Validate the data and fine-tune; writes the model to <run>/model."""
    cfg = load_cli_config(config, overrides)
    from tunesmith.pipeline import pick_run_dir, prepare_for_run, removed_if_unused
    from tunesmith.progress import RichProgress
    from tunesmith.training import train as train_model
    from tunesmith.training.distributed import (
        Launcher,
        in_launched_process,
        is_main_process,
        relaunch,
        shutdown,
    )

    try:
        chosen = Launcher(launcher)
    except ValueError:
        fail(f"--launcher {launcher!r}: use one of {', '.join(x.value for x in Launcher)}")
    if chosen is not Launcher.NONE and not in_launched_process():
        with input_errors():
            out = pick_run_dir(cfg, resume=resume, run_dir=run_dir)  # one folder for every rank
        args = ["train", str(config), "--run-dir", str(out), *(["--resume"] if resume else []),
                *[x for o in overrides for x in ("--set", o)]]
        if accelerate_config is not None and not accelerate_config.is_file():
            fail(f"--accelerate-config {accelerate_config}: file not found (write one with `accelerate config`)")
        code = relaunch(chosen, nproc, args, str(accelerate_config) if accelerate_config else None)
        if code:
            fail(f"{chosen.value} with {nproc} processes exited with code {code} (the failing rank's error is above)",
                 code=code)
        console.print(f"model: {out / 'model'}  ({nproc} processes, {chosen.value})")
        return
    try:
        with input_errors():
            out = pick_run_dir(cfg, resume=resume, run_dir=run_dir)
            with removed_if_unused(out, fresh=not (resume or run_dir)):
                if is_main_process():
                    bundle = prepare_for_run(cfg, out, resume=resume)
                else:  # DDP: rank 0 writes the data card and checks the resume; the others read the same data
                    from tunesmith.data import prepare_data

                    bundle = prepare_data(cfg, None)
            result = train_model(cfg, bundle, out, resume=resume,
                                 callbacks=[RichProgress(console)] if is_main_process() else [])
    finally:
        shutdown()
    if not is_main_process():
        return
    from tunesmith.io import atomic_write_json

    summary = result.to_dict() | {"log_history": f"{len(result.log_history)} entries"}
    atomic_write_json(out / "train_result.json", summary)
    atomic_write_json(out / "log_history.json", result.log_history)  # loss and eval curves, step by step
    console.print_json(json.dumps(summary, default=str))
    console.print(f"model: {result.model_dir}")


@app.command()
def evaluate(
    config: Path = typer.Argument(..., help="The YAML config (same data and splits as training)."),
    model: Path = typer.Option(..., "--model", "-m", help="A trained model dir, e.g. <run>/model."),
    champion: Path = typer.Option(None, "--champion", help="Another model dir to compare against."),
    overrides: list[str] = SetOpt,
) -> None:
    """Evaluate a model on the test split against the linear-probe baseline; apply the gates; write the report.

    Reads the model dir only: calibration.json and the report go to a new run folder.
    """
    cfg = load_cli_config(config, overrides)
    if champion is not None and not (champion / "config.json").is_file():
        fail(f"--champion {champion}: not a model dir (no config.json); pass a trained model folder such as <run>/model")
    from tunesmith.data import prepare_data
    from tunesmith.evaluation import evaluate as evaluate_model
    from tunesmith.evaluation import gate, write_report
    from tunesmith.pipeline import new_run_dir, removed_if_unused

    with input_errors(), removed_if_unused(new_run_dir(cfg)) as out:
        bundle = prepare_data(cfg, out)
        with console.status("evaluating"):
            report = evaluate_model(cfg, bundle, model, champion_dir=champion, out_dir=out)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=report.primary_metric,  # causal-lm: rouge_l
                    has_champion=report.has_champion, champion_note=report.champion_note)
    path = write_report(out, config=cfg, data_report=bundle.report.to_dict(), train_result=None,
                        eval_report=report, decision=decision, lineage={"model_dir": str(model)})
    print_outcome(report, decision)
    console.print(f"report: {path}")
    if not decision.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def run(
    config: Path = ConfigArg,
    resume: bool = ResumeOpt,
    run_dir: str = RunDirOpt,
    overrides: list[str] = SetOpt,
) -> None:
    """All stages: validate, train, evaluate, gate, report, log to MLflow, register if the gates pass."""
    cfg = load_cli_config(config, overrides)
    from tunesmith.pipeline import run as run_pipeline
    from tunesmith.progress import RichProgress

    with input_errors():
        outcome = run_pipeline(cfg, resume=resume, run_dir=run_dir, say=say, callbacks=[RichProgress(console)])
    print_outcome(outcome.eval_report, outcome.decision)
    if outcome.registered_version is not None:
        v = outcome.registered_version
        console.print(f"[green]registered[/] {cfg.name} version {get_field(v, 'version')} as challenger "
                      f"(promote with: tunesmith models promote {cfg.name})")
    elif not outcome.passed:
        console.print("[red]gates failed[/]: not registered")
    console.print(f"report: {outcome.run_dir / 'report.html'}  metrics: {outcome.run_dir / 'metrics.json'}")
    if not outcome.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def tune(
    config: Path = typer.Argument(..., help="The YAML config, with a `search:` block."),
    storage: str = typer.Option(None, "--storage", help="Optuna RDB URL shared by workers (default: search.storage, "
                                "else sqlite:///<output_dir>/<name>/tune/study.db)."),
    study: str = typer.Option(None, "--study", help="Study name (default: search.study, else the config's name)."),
    n_trials: int = typer.Option(None, "--n-trials", help="Finished trials the study ends with (search.n_trials)."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds after which this worker starts no new trial."),
    overrides: list[str] = SetOpt,
) -> None:
    """Hyperparameter search (Optuna TPE + pruning) on the eval split; writes the best trial's config as best.yaml.

    Start the same command in several processes (or machines, with a shared --storage) to split the trials.
    """
    cfg = load_cli_config(config, overrides)
    from tunesmith.tuning import TuneError
    from tunesmith.tuning import tune as run_study

    with input_errors(TuneError):
        from tunesmith.progress import RichProgress

        result = run_study(cfg, storage=storage, study_name=study, n_trials=n_trials, timeout_s=timeout,
                           say=say, callbacks=[RichProgress(console)])
    print_tune_result(result)


@app.command()
def reproduce(
    ref: str = typer.Argument(..., help="NAME:VERSION of a registered model, or an MLflow run id."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: .tunesmith/mlflow.db)."),
) -> None:
    """Re-run a registered version from its stored config (refused if the data changed); compare weights and metrics.

    Exit 0: bit-identical weights and identical metrics; 1: something differs (printed); 2: cannot reproduce.
    """
    from tunesmith.config import RegistryConfig
    from tunesmith.reproduce import ReproduceError
    from tunesmith.reproduce import reproduce as run_reproduce

    registry = RegistryConfig(tracking_uri=tracking_uri) if tracking_uri else None
    with input_errors(ReproduceError):
        result = run_reproduce(ref, registry=registry, say=say)
    print_reproduction(result)
    if not result.reproduced:
        raise typer.Exit(EXIT_GATE_FAILED)


@app.command()
def init(
    data: Path = typer.Argument(..., help="A csv/jsonl/parquet file with a text and a label column."),
    output: Path = typer.Option(Path("tunesmith.yaml"), "--output", "-o", help="Where to write the config."),
    name: str = typer.Option(None, "--name", help="Registered model name (default: the file's stem)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config."),
) -> None:
    """Write a starter config for a data file, guessing the text and label columns."""
    from tunesmith.starter import StarterError, write_starter_config

    if output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it")
    with input_errors(StarterError, only=True):
        guess = write_starter_config(data, output, name=name)
    console.print(f"wrote {output}: text column {guess.text_column!r}, label column {guess.label_column!r}, "
                  f"{len(guess.labels)} labels")
    console.print(f"next: tunesmith validate {output} && tunesmith run {output}")


@app.command()
def schema() -> None:
    """Every config key with its type, default and description, as JSON Schema."""
    console.print_json(json.dumps(Config.model_json_schema()))


@app.command("env")
def env_info() -> None:
    """Versions and hardware, for bug reports."""
    from tunesmith.registry import collect_environment

    console.print_json(json.dumps(collect_environment()))


# --- models -----------------------------------------------------------------------------------------------

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


@models_app.command("promote")
def models_promote(
    name: str,
    version: str = typer.Option(None, "--version", help="Version to make champion (default: the challenger)."),
    tracking_uri: str = TrackingOpt,
    config: Path = ConfigOpt,
) -> None:
    """Move the `champion` alias to the challenger (or --version)."""
    from tunesmith import registry

    _model_name(name)

    with input_errors(registry.RegistryError, only=True):
        v = registry.promote(name, version, **_where(tracking_uri, config))
    console.print(f"{name}: champion -> version {get_field(v, 'version')}")


@models_app.command("rollback")
def models_rollback(name: str, tracking_uri: str = TrackingOpt, config: Path = ConfigOpt) -> None:
    """Move `champion` back to the version it pointed at before the last promote."""
    from tunesmith import registry

    _model_name(name)

    with input_errors(registry.RegistryError, only=True):
        v = registry.rollback(name, **_where(tracking_uri, config))
    console.print(f"{name}: champion rolled back to version {get_field(v, 'version')}")


# --- serve ------------------------------------------------------------------------------------------------


@app.command()
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


# --- review (the human review queue; its commands live in review/cli.py) ------------------------------------

from tunesmith.review.cli import review_app  # noqa: E402

app.add_typer(review_app, name="review")

# --- fine-tuning jobs API and workers (their commands live in jobs/cli.py) ----------------------------------

from tunesmith.jobs.cli import api_app, worker  # noqa: E402

app.add_typer(api_app, name="api")
app.command()(worker)
# --- monitor / feedback / retrain ---------------------------------------------------------------------------

feedback_app = typer.Typer(no_args_is_help=True, help="True labels for served predictions.")
app.add_typer(feedback_app, name="feedback")
LoopConfigOpt = typer.Option(..., "--config", "-c", help="The model's config (monitoring:, retrain:, serving.predictions).")
LoopModelOpt = typer.Option(None, "--model", "-m", help="Registered model name (default: the config's name).")


@app.command()
def monitor(
    config: Path = LoopConfigOpt,
    model: str = LoopModelOpt,
    window: str = typer.Option(None, "--window", "-w", help="Last N predictions (500) or a duration (24h); "
                               "default monitoring.window."),
    act: bool = typer.Option(False, "--act", help="Run retrain when a trigger fires (file-locked, idempotent)."),
    overrides: list[str] = SetOpt,
) -> None:
    """Drift and live accuracy of the served model over a window; JSON + HTML report and Prometheus gauges."""
    cfg = load_cli_config(config, overrides)
    from tunesmith.monitoring.monitor import monitor as run_monitor
    from tunesmith.monitoring.monitor_report import write_monitor_report
    from tunesmith.monitoring.triggers import act as run_act

    with input_errors(ValueError):
        report = run_monitor(cfg, name=model, window=window)
        if act:
            report["triggers"] = run_act(cfg, report, name=model, say=say)
            report["files"] = write_monitor_report(report, Path(report["files"]["json"]).parent)
    print_monitor(report)


@feedback_app.command("import")
def feedback_import(
    file: Path = typer.Argument(..., help="jsonl or csv: request_id [index] label, or text label; optional "
                                "labeled_by, labeled_at."),
    config: Path = LoopConfigOpt,
    model: str = LoopModelOpt,
    labeled_by: str = typer.Option(None, "--labeled-by", help="Who labeled rows that do not say."),
) -> None:
    """Import true labels; bad rows are listed as file:line (exit 2 when any), good rows are stored."""
    cfg = load_cli_config(config, [])
    from tunesmith.monitoring.feedback import import_feedback
    from tunesmith.monitoring.monitor import db_url

    name = model or cfg.name
    with input_errors():
        labels = cfg.data.labels or _served_labels(cfg, name)
        result = import_feedback(db_url(cfg), file, model=name, labels=labels, labeled_by=labeled_by)
    for line in result.bad:
        err.print(f"[yellow]bad row:[/] {line}", highlight=False)
    console.print(f"imported {result.imported} labels for {name} ({result.already_present} already present, "
                  f"{len(result.bad)} bad)")
    if result.bad:
        raise typer.Exit(EXIT_BAD_INPUT)


def _served_labels(cfg: Config, name: str) -> list[str] | None:
    """The champion's labels (from its config.json), to check imported labels against."""
    from tunesmith.registry import model_dir_for

    model_dir = model_dir_for(name, "champion", registry=cfg.registry)
    if model_dir is None:
        return None
    id2label = json.loads((Path(model_dir) / "config.json").read_text()).get("id2label") or {}
    return [id2label[k] for k in sorted(id2label, key=int)] or None


@app.command()
def retrain(
    config: Path = LoopConfigOpt,
    model: str = LoopModelOpt,
    overrides: list[str] = SetOpt,
) -> None:
    """Next dataset version from new labels -> train -> frozen test + recent slice gates -> challenger."""
    cfg = load_cli_config(config, overrides)
    from tunesmith.retrain import retrain as run_retrain
    from tunesmith.retrain.run import RetrainError

    with input_errors(RetrainError):
        outcome = run_retrain(cfg, name=model, say=say)
    console.print_json(json.dumps(outcome.to_dict(), default=str))
    if not outcome.passed:
        console.print(f"[red]not registered[/]: {'; '.join(outcome.reasons)}")
        raise typer.Exit(EXIT_GATE_FAILED)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The CLI draws its own progress; library bars and load reports would bury the tables it prints.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)

