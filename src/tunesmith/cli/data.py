"""`tunesmith validate`, `init` and `schema`: check a config and its data, start a config, document the keys.

Registered on the app by tunesmith.cli, in the order `tunesmith --help` lists them.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from tunesmith.cli.common import ConfigArg, SetOpt, console, fail, input_errors, load_cli_config
from tunesmith.cli.output import print_data_report
from tunesmith.config import json_schema


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
                bundle = prepare_data(cfg, out, load_frames=False)  # batched: the splits stay parquet files
        except DataChecksFailed as exc:
            print_data_report(exc.report.to_dict())  # every finding, then the violations and exit 2
            fail(str(exc))
    print_data_report(bundle.report.to_dict())


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
    from tunesmith.starter import derived_lines

    console.print(f"training settings `run` will derive for about {guess.stats.rows} training rows (commented in the "
                  "config; uncomment to pin):")
    for line in derived_lines(guess):
        console.print(f"  {line}", soft_wrap=True, markup=False)
    console.print(f"next: tunesmith validate {output} && tunesmith run {output}")


def schema() -> None:
    """Every config key with its type, default and description, as JSON Schema."""
    console.print_json(json.dumps(json_schema()))  # the families' sections (chat, embedding, ...) included
