"""What every command shares: the consoles, the exit codes, the common options, and the one error handler.

A command reports the user's mistakes (a bad config, data, model reference, ...) as one `error: ...` line on
stderr and exit code 2, never as a traceback:

    with input_errors():
        bundle = prepare_data(cfg, out)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from tunesmith.config import Config, ConfigError, load_config

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)  # logs and CI: no 80-col wrap
err = Console(stderr=True)

EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2

SetOpt = typer.Option([], "--set", "-s", help="Override a config key: --set training.epochs=1 (repeatable).")
ConfigArg = typer.Argument(..., help="The YAML config.")
ResumeOpt = typer.Option(False, "--resume", help="Continue the newest unfinished run from its last complete checkpoint.")
RunDirOpt = typer.Option(None, "--run-dir", help="Run folder to use (default: a new one under output_dir).")
TrackingOpt = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: .tunesmith/mlflow.db).")


def say(message: str) -> None:
    """A progress line from a long stage (the `say=` callback of pipeline, tune, retrain, ...)."""
    console.print(f"[dim]·[/] {message}")


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print `error: <message>` on stderr and exit with `code` (2: bad input)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def input_error_types() -> tuple[type[Exception], ...]:
    """Errors that mean the user's input is wrong, reported in one line each instead of a traceback.

    A function, not a constant: the stage packages that define them are imported only when an error is raised.
    """
    from tunesmith.data import DataError
    from tunesmith.evaluation import EvalError
    from tunesmith.families.causal_lm.provider import ProviderError
    from tunesmith.hub import ModelNotFound
    from tunesmith.registry import RegistryError
    from tunesmith.training import MethodError, TrainingError

    return (ConfigError, DataError, ModelNotFound, TrainingError, MethodError, RegistryError, EvalError,
            FileNotFoundError, ProviderError)


@contextmanager
def input_errors(*also: type[Exception], only: bool = False, prefix: str = "") -> Iterator[None]:
    """The one error handler: an input error raised in the block becomes `error: <prefix><it>` and exit 2.

    Catches input_error_types() and the `also` types; with only=True, the `also` types alone (where a command
    has always reported just its own error type). Anything else propagates unchanged.
    """
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, (*(() if only else input_error_types()), *also)):
            raise
        fail(f"{prefix}{exc}")


def load_cli_config(path: Path, overrides: list[str]) -> Config:
    """The config at `path` with `--set` overrides applied; a bad config or an unknown gate metric exits 2."""
    with input_errors(ConfigError, only=True):
        cfg = load_config(path, overrides)
    from tunesmith.evaluation import known_metrics_hint, unknown_gate_metrics

    unknown = unknown_gate_metrics(cfg.gates, primary_metric=cfg.training.metric)
    if unknown:
        fail(f"{path}: gates: unknown metric(s) {', '.join(unknown)}; {known_metrics_hint()}")
    if cfg.evaluation.safety is not None:  # a safety suite that cannot be read is said now, not after training
        from tunesmith.evaluation.safety.suites import load_suites

        with input_errors():
            load_suites(cfg.evaluation.safety.suites, cfg, limit=cfg.evaluation.safety.limit)
    return cfg
