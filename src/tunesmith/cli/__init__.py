"""The tunesmith command line: one verb per stage, all driven by the same YAML config.

    tunesmith run examples/sentiment/config.yaml --set training.epochs=1

Exit codes: 0 done, 1 a gate failed, 2 bad input (config, data, model reference).
"""

from __future__ import annotations

import os
import sys

import typer

from tunesmith.cli import data, env, jobs, loop, models, ops, review, serve, train
from tunesmith.cli.common import err

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])

# Every command, in the order `tunesmith --help` lists them (commands first, then the groups); their code is
# in the command modules, which share cli/common.py (options, exit codes, the input-error handler).
app.command()(data.validate)
app.command()(train.train)
app.command()(train.evaluate)
app.command()(train.run)
app.command()(train.tune)
app.command()(train.reproduce)
app.command()(data.init)
app.command()(data.schema)
app.command("env")(env.env_info)
app.command()(serve.serve)
app.command()(jobs.worker)
app.command()(loop.monitor)
app.command()(loop.retrain)
app.command("ui")(ops.ui)
app.add_typer(models.models_app, name="models")
app.add_typer(review.review_app, name="review")
app.add_typer(jobs.api_app, name="api")
app.add_typer(loop.feedback_app, name="feedback")
app.add_typer(ops.ops_app, name="ops")


def main() -> None:
    """The `tunesmith` console script: quiet library logs, exit 130 on Ctrl-C."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The CLI draws its own progress; library bars and load reports would bury the tables it prints.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
