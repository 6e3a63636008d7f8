"""`tunesmith train`, `evaluate`, `run`, `tune` and `reproduce`: the commands that fine-tune and judge a model.

Registered on the app by tunesmith.cli, in the order `tunesmith --help` lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.cli.common import (
    EXIT_GATE_FAILED,
    ConfigArg,
    ResumeOpt,
    RunDirOpt,
    SetOpt,
    TrackingOpt,
    console,
    fail,
    input_errors,
    load_cli_config,
    say,
)
from tunesmith.cli.output import get_field, print_outcome, print_reproduction, print_tune_result


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
    from tunesmith.pipeline import pick_run_dir, prepare_for_run, removed_if_unused, with_canaries
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

                    bundle = with_canaries(cfg, prepare_data(cfg, None))
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
    from tunesmith.tuning import TuneError

    search = None
    if cfg.training.auto is not None:  # training.auto: the Optuna search before the final training
        from tunesmith.tuning.auto import search as auto_search

        search = auto_search
    with input_errors(TuneError):
        outcome = run_pipeline(cfg, resume=resume, run_dir=run_dir, say=say, callbacks=[RichProgress(console)],
                               search=search)
    print_outcome(outcome.eval_report, outcome.decision)
    if outcome.registered_version is not None:
        v = outcome.registered_version
        number = get_field(v, "version")
        console.print(f"[green]registered[/] {cfg.name} version {number} as challenger "
                      f"(promote with: tunesmith models promote {cfg.name} --reason '...')")
        if not (outcome.run_dir / "model" / "external_model.json").exists():  # a provider's model has no weights here
            console.print(f"MLflow Model: mlflow.pyfunc.load_model('models:/{cfg.name}/{number}')", soft_wrap=True)
    elif not outcome.passed:
        console.print("[red]gates failed[/]: not registered")
    console.print(f"report: {outcome.run_dir / 'report.html'}  metrics: {outcome.run_dir / 'metrics.json'}")
    if not outcome.passed:
        raise typer.Exit(EXIT_GATE_FAILED)


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


def reproduce(
    ref: str = typer.Argument(..., help="NAME:VERSION of a registered model, or an MLflow run id."),
    tracking_uri: str = TrackingOpt,
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
