"""`tunesmith review`: serve the review page; `enqueue`, `export` and `agreement` subcommands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from tunesmith.cli.common import fail, input_errors, load_cli_config

review_app = typer.Typer(invoke_without_command=True, no_args_is_help=False,
                         help="Human review queue: `review --model NAME` serves the page; enqueue / export / agreement.")

ModelOpt = typer.Option(None, "--model", "-m", help="Registered model name whose queue to use.")
ConfigOpt = typer.Option(None, "--config", "-c", help="A config whose `review:` and `serving.predictions:` apply.")
DbOpt = typer.Option(None, "--db", help="SQLAlchemy URL of the prediction log (default: serving.predictions.url, "
                     "else sqlite under .tunesmith/predictions.db).")


def _setup(model: str | None, config: Path | None, db: str | None):
    """(model, db url, Config or None, ReviewConfig) from the flags and the optional config."""
    from tunesmith.config import ReviewConfig
    from tunesmith.monitoring.predictions import default_url

    cfg = load_cli_config(config, []) if config is not None else None
    if not model:
        fail("--model: name the registered model whose review queue to use, e.g. --model sentiment")
    url = db or (cfg.serving.predictions.url if cfg is not None else None) or default_url()
    return model, url, cfg, cfg.review if cfg is not None else ReviewConfig()


@review_app.callback()
def review(
    ctx: typer.Context,
    model: str = ModelOpt,
    config: Path = ConfigOpt,
    db: str = DbOpt,
    host: str = typer.Option(None, "--host", help="Bind address (review.host; default 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (review.port; default 8100)."),
    reviewer: str = typer.Option(None, "--reviewer", help="Your reviewer name when the page has no per-reviewer "
                                 "tokens (review.reviewer; default: the OS user without a token, else each "
                                 "reviewer enters a name)."),
) -> None:
    """Serve the review page for MODEL's queue (no subcommand).

    Sign-in: per-reviewer tokens from $TUNESMITH_REVIEW_TOKENS (`name=token,...`; review.reviewer_tokens_env),
    else the serving token when it is set, else none (local use: you review as --reviewer or the OS user)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from tunesmith.review.web import (
        LOOPBACK_HOSTS,
        create_review_app,
        default_reviewer,
        parse_reviewer_tokens,
    )

    name, url, cfg, rc = _setup(model, config, db)
    labels = rc.labels or (list(cfg.data.labels) if cfg is not None and cfg.data.labels else None)
    token_env = cfg.serving.auth_token_env if cfg is not None else "TUNESMITH_SERVE_TOKEN"
    reviewer_tokens = None
    if os.environ.get(rc.reviewer_tokens_env, "").strip():
        with input_errors(ValueError, only=True, prefix=f"{rc.reviewer_tokens_env}: "):
            reviewer_tokens = parse_reviewer_tokens(os.environ[rc.reviewer_tokens_env])
    fixed = reviewer or rc.reviewer
    if reviewer_tokens and fixed:
        fail(f"--reviewer / review.reviewer: with per-reviewer tokens (${rc.reviewer_tokens_env}) each token names "
             "its reviewer; drop the fixed name")
    token = None if reviewer_tokens else os.environ.get(token_env) or None
    bind_host, bind_port = host or rc.host, port if port is not None else rc.port
    allowed = rc.allowed_hosts
    if allowed is None and (bind_host in LOOPBACK_HOSTS or bind_host.startswith("127.")):
        allowed = [*LOOPBACK_HOSTS, bind_host]  # a DNS-rebinding page calls itself by another name
    app = create_review_app(url, name, labels=labels, token=token, reviewer_tokens=reviewer_tokens,
                            reviewer=fixed, allowed_hosts=allowed)
    typer.echo(f"review page for {name}: http://{bind_host}:{bind_port}/ (database {url})")
    if reviewer_tokens:
        typer.echo(f"sign-in: per-reviewer tokens from ${rc.reviewer_tokens_env} ({', '.join(reviewer_tokens)})")
    elif token:
        typer.echo(f"sign-in: the shared token from ${token_env}"
                   + (f"; reviewing as {fixed}" if fixed else "; each reviewer enters a name"))
    else:
        typer.echo(f"no sign-in (local use): reviewing as {fixed or default_reviewer()}; set "
                   f"${rc.reviewer_tokens_env}=name=token,... for several reviewers")
    uvicorn.run(app, host=bind_host, port=bind_port, log_level="warning", access_log=False)


@review_app.command("enqueue")
def enqueue_cmd(
    model: str = ModelOpt,
    config: Path = ConfigOpt,
    db: str = DbOpt,
    label_issues: Path = typer.Option(None, "--label-issues", help="A label_issues.jsonl from the data gates "
                                      "(default: review.label_issues_file, else the newest run's)."),
    threshold: float = typer.Option(None, "--threshold", help="Confidence below which predictions are queued "
                                    "(review.confidence_threshold)."),
) -> None:
    """Queue low-confidence predictions (each family's uncertainty), shadow disagreements, a random share and flagged
    training rows; re-rank the queue."""
    from tunesmith.config import ReviewEmbeddings
    from tunesmith.review.enqueue import ReviewInputError, enqueue, newest_label_issues
    from tunesmith.review.ordering import tfidf_embed

    name, url, cfg, rc = _setup(model, config, db)
    issues = label_issues or (Path(rc.label_issues_file) if rc.label_issues_file else None)
    if issues is None and cfg is not None:
        from tunesmith.pipeline import runs_root

        issues = newest_label_issues(runs_root(cfg))
    if issues is not None and not Path(issues).is_file():
        fail(f"--label-issues: {issues} not found (data.checks.label_issues.review_file: true writes one per run)")
    embed = None
    if rc.embeddings is ReviewEmbeddings.TFIDF or (rc.embeddings is ReviewEmbeddings.BASE and cfg is None):
        embed = tfidf_embed  # without a config there is no model.base to embed with
    elif rc.embeddings is ReviewEmbeddings.BASE:
        from tunesmith.encoders import base_embedder

        embed = base_embedder(cfg)
    with input_errors(ReviewInputError, only=True):
        report = enqueue(url, name, threshold=rc.confidence_threshold if threshold is None else threshold,
                         sources=rc.sources, label_issues_file=issues, strategy=rc.strategy,
                         diversity=rc.diversity, embed=embed, task=cfg.task if cfg is not None else None,
                         random_share=rc.random_share,
                         labels=rc.labels or (list(cfg.data.labels) if cfg is not None and cfg.data.labels else None))
    typer.echo(json.dumps(report, indent=2))


@review_app.command("export")
def export_cmd(
    model: str = ModelOpt,
    config: Path = ConfigOpt,
    db: str = DbOpt,
    output: Path = typer.Option(..., "--output", "-o", help="JSONL file to write (text, label, labeled_by, ...)."),
) -> None:
    """Write the resolved reviewed labels as JSONL: rows for the next dataset version, with reviewer and time."""
    from tunesmith.io import atomic_write_text
    from tunesmith.review.store import reviewed_labels

    name, url, _, _ = _setup(model, config, db)
    rows = reviewed_labels(url, name)
    atomic_write_text(output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    typer.echo(f"{len(rows)} reviewed labels -> {output}")


@review_app.command("agreement")
def agreement_cmd(model: str = ModelOpt, config: Path = ConfigOpt, db: str = DbOpt) -> None:
    """Cohen's kappa and percent agreement per reviewer pair, and the items they disagree on (JSON)."""
    from tunesmith.review.agreement import agreement

    name, url, _, _ = _setup(model, config, db)
    typer.echo(json.dumps(agreement(url, name), indent=2, ensure_ascii=False))
