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
            _print_data_report(exc.report.to_dict())  # every finding, then the violations and exit 2
            fail(str(exc))
    _print_data_report(bundle.report.to_dict())


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
    _print_outcome(report, decision)
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
    _print_outcome(outcome.eval_report, outcome.decision)
    if outcome.registered_version is not None:
        v = outcome.registered_version
        console.print(f"[green]registered[/] {cfg.name} version {_get(v, 'version')} as challenger "
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
    table = Table("trial", "state", result.metric, *result.best_params, title=f"study {result.study_name}")
    for t in result.trials:
        value = "-" if t["value"] is None else f"{t['value']:.4f}"
        table.add_row(f"{t['number']}{' (default)' if t['default'] else ''}", t["state"], value,
                      *(str(t["params"].get(k, "-")) for k in result.best_params))
    console.print(table)
    console.print(f"{result.finished} finished trials ({result.pruned} pruned), {result.this_worker} run here in "
                  f"{result.elapsed_s:.0f}s; best trial {result.best_trial}: {result.metric}={result.best_value:.4f}")
    console.print(f"best config: {result.best_config}  (tunesmith run {result.best_config})")


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
    same = "[green]identical[/]" if result.weights_identical else "[red]DIFFERENT[/]"
    console.print(f"weights: {same} (sha256 recorded {result.recorded_weights[:16]}, now {result.new_weights[:16]})")
    if result.metric_diffs:
        table = Table("metric", "recorded", "now", "difference", title="metrics that differ")
        for k, (old, new) in sorted(result.metric_diffs.items()):
            table.add_row(k, f"{old:.6g}", f"{new:.6g}", f"{new - old:+.3g}")
        console.print(table)
    console.print(f"metrics: {result.compared_metrics - len(result.metric_diffs)}/{result.compared_metrics} identical")
    if result.env_diffs:
        table = Table("environment", "recorded", "now", title="environment differences (may explain the above)")
        for k, (old, new) in sorted(result.env_diffs.items()):
            table.add_row(k, old, new)
        console.print(table)
    else:
        console.print("environment: same library versions and hardware as recorded")
    console.print(f"reproduction run: {result.run_dir} (MLflow run {result.new_run_id}, not registered)")
    console.print("[bold green]REPRODUCED[/]" if result.reproduced else "[bold red]NOT REPRODUCED[/]")
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
    console.print(f"{name}: champion -> version {_get(v, 'version')}")


@models_app.command("rollback")
def models_rollback(name: str, tracking_uri: str = TrackingOpt, config: Path = ConfigOpt) -> None:
    """Move `champion` back to the version it pointed at before the last promote."""
    from tunesmith import registry

    _model_name(name)

    with input_errors(registry.RegistryError, only=True):
        v = registry.rollback(name, **_where(tracking_uri, config))
    console.print(f"{name}: champion rolled back to version {_get(v, 'version')}")


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
    _print_monitor(report)


def _print_monitor(report: dict) -> None:
    d = report["drift"]
    if d.get("status") == "n/a":
        console.print(f"drift: n/a ({d.get('note')})")
    else:
        table = Table("test", "statistic", "p-value", "flagged", title=f"drift vs version {d['reference_version']} "
                      f"({d['rows']} predictions)")
        for name, t in d["tests"].items():
            table.add_row(name, _fmt(t["statistic"]), _fmt(t["p_value"]), "[red]yes[/]" if t["flagged"] else "no")
        console.print(table)
        console.print(f"drift: {'[red]DETECTED[/]' if d['detected'] else '[green]none[/]'}")
    live = Table("version", "labels", "accuracy", "macro-F1", "burn rate", "SLO", title="live accuracy")
    for version, v in report["live"]["versions"].items():
        live.add_row(str(version), str(v["n"]), _fmt(v["accuracy"]), _fmt(v["macro_f1"]), _fmt(v["burn_rate"]),
                     f"{v['status']} {v['note']}")
    console.print(live)
    trig = report.get("triggers")
    if trig:
        console.print(f"triggers fired: {', '.join(t['name'] for t in trig['fired']) or 'none'}; "
                      f"action: {trig['action']}" + (f" ({trig['note']})" if trig.get("note") else ""))
        if trig.get("retrain"):
            r = trig["retrain"]
            verdict = f"registered version {r['registered_version']}" if r["passed"] else "; ".join(r["reasons"])
            console.print(f"retrain: dataset v{r['dataset_version']}: {verdict}")
    console.print(f"report: {report['files']['html']}  json: {report['files']['json']}  "
                  f"gauges: {report['files']['prometheus']}")


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


# --- printing -----------------------------------------------------------------------------------------------


def _get(obj, key):
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _print_data_report(rep: dict) -> None:
    table = Table("split", "rows", "labels", title="data")
    for split, n in rep.get("split_sizes", {}).items():
        dist = rep.get("label_distribution", {}).get(split, {})
        table.add_row(split, str(n), ", ".join(f"{k}: {v}" for k, v in dist.items()))
    console.print(table)
    if rep.get("quarantined"):
        console.print(f"[yellow]quarantined {rep['quarantined']} rows[/] {rep.get('quarantined_by_reason', {})} "
                      f"-> {rep.get('quarantine_path')}")
        for line in rep.get("quarantine_examples") or []:
            console.print(f"  {line}", markup=False, highlight=False)
        if rep["quarantined"] > len(rep.get("quarantine_examples") or []):
            console.print(f"  ... {rep['quarantined'] - len(rep['quarantine_examples'] or [])} more in "
                          f"{rep.get('quarantine_path') or 'the data card'}", markup=False, highlight=False)
    if rep.get("excluded_by_config"):
        console.print(f"excluded by data.drop_labels: {rep['excluded_by_config']}")
    for w in rep.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
    _print_checks(rep.get("checks") or {})
    console.print(f"fingerprint: {rep.get('fingerprint')}")


def _print_checks(checks: dict) -> None:
    """One line per data gate: its policy, its status and what it found."""
    if not checks:
        return
    from tunesmith.data.checks import summarize

    table = Table("check", "policy", "status", "findings", title="data checks")
    for name, f in checks.items():
        color = {"fail": "red", "warn": "yellow", "review": "yellow", "pass": "green"}.get(f.get("status"), "white")
        table.add_row(name, str(f.get("policy", "on" if f.get("enabled") else "-")), f"[{color}]{f.get('status')}[/]",
                      summarize(name, f))
    console.print(table)


def _print_outcome(report, decision) -> None:
    data = report.to_dict()
    tuned, base, champ = data.get("tuned", {}), data.get("baseline", {}), data.get("champion") or {}
    level = f"{(data.get('bootstrap') or {}).get('confidence', 0.95):.0%} CI"
    columns = ["metric", "base model" if "rouge_l" in tuned else "baseline (probe)", "tuned", f"uplift [{level}]"]
    columns[1] = "base model" if "mrr@10" in tuned or "ndcg@10" in tuned or data.get("queries") else columns[1]
    if champ:
        columns += ["champion", f"vs champion [{level}]"]
    table = Table(*columns, title="base vs tuned (test split)")
    for m in ("accuracy", "macro_f1", "ece", "loss", "perplexity", "rouge_l", "exact_match", "json_valid",
              "regression_pass_rate", *_FAMILY_METRICS):  # the last six: causal-lm, where the baseline is the base model
        if m not in tuned:
            continue
        row = [m, _fmt(base.get(m)), _fmt(tuned.get(m)), _ci((data.get("uplift") or {}).get(m))]
        if champ:
            row += [_fmt(champ.get(m)), _ci((data.get("vs_champion") or {}).get(m))]
        table.add_row(*row)
    console.print(table)
    if champ:
        console.print(f"champion compared on {data.get('vs_champion_rows')} test rows it never trained on "
                      f"({data.get('vs_champion_excluded')} excluded)")
    console.print(decision.to_table())
    verdict = "[bold green]PASSED[/]" if decision.passed else "[bold red]FAILED[/]"
    console.print(f"gate decision: {verdict}")


# embedding (baseline: the base model) and regression (baseline: a ridge probe on frozen embeddings)
_FAMILY_METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "mae", "rmse", "spearman", "pearson")
_FAMILY_METRICS += ("f1", "precision", "recall")  # token-classification: entity level (macro_f1 is listed above)
_FAMILY_METRICS = (*_FAMILY_METRICS, "micro_f1", "subset_accuracy", "hamming_loss")  # multi-label classification


def _ci(u) -> str:
    if not isinstance(u, dict) or not all(isinstance(u.get(k), int | float) for k in ("delta", "ci_low", "ci_high")):
        return "-"
    return f"{u['delta']:+.4f} [{u['ci_low']:+.4f}, {u['ci_high']:+.4f}]"


def _fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, int | float) else "-"


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

