"""`tunesmith monitor`, `feedback import` and `retrain`: watch the served model, collect labels, retrain.

monitor and retrain are registered on the app by tunesmith.cli; `feedback` is the feedback_app sub-command.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_GATE_FAILED,
    SetOpt,
    console,
    err,
    input_errors,
    load_cli_config,
    say,
)
from tunesmith.cli.output import print_monitor
from tunesmith.config import Config

feedback_app = typer.Typer(no_args_is_help=True, help="True labels for served predictions.")
LoopConfigOpt = typer.Option(..., "--config", "-c", help="The model's config (monitoring:, retrain:, serving.predictions).")
LoopModelOpt = typer.Option(None, "--model", "-m", help="Registered model name (default: the config's name).")


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
    from tunesmith.retrain.triggers import act_and_report

    with input_errors(ValueError):
        report = run_monitor(cfg, name=model, window=window)
        if act:
            report = act_and_report(cfg, report, name=model, say=say)
    print_monitor(report)


@feedback_app.command("import")
def feedback_import(
    file: Path = typer.Argument(..., help="jsonl or csv: request_id [index] value|label, or text value|label "
                                "(the family's feedback: a label, label set, number, spans, document, relevance or "
                                "thumbs; JSON in a CSV cell); optional labeled_by, labeled_at."),
    config: Path = LoopConfigOpt,
    model: str = LoopModelOpt,
    labeled_by: str = typer.Option(None, "--labeled-by", help="Who labeled rows that do not say."),
) -> None:
    """Import feedback (true labels, values, corrections); bad rows are listed as file:line (exit 2 when any), good
    rows are stored."""
    cfg = load_cli_config(config, [])
    from tunesmith.families import get
    from tunesmith.monitoring.feedback import import_feedback
    from tunesmith.monitoring.monitor import db_url

    name = model or cfg.name
    hooks = get(cfg.task).feedback
    if hooks is None:
        err.print(f"[red]error:[/] the {cfg.task} family takes no feedback yet")
        raise typer.Exit(EXIT_BAD_INPUT)
    with input_errors():
        labels = cfg.data.labels or _served_labels(cfg, name)
        result = import_feedback(db_url(cfg), file, model=name, labels=labels, labeled_by=labeled_by, hooks=hooks)
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
    if outcome.recent:
        from tunesmith.retrain.run import recent_summary

        console.print(recent_summary(outcome.recent, cfg.task))
    if not outcome.passed:
        console.print(f"[red]not registered[/]: {'; '.join(outcome.reasons)}")
        raise typer.Exit(EXIT_GATE_FAILED)
