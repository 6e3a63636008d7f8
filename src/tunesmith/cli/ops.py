"""`tunesmith ops`: what operating a served model needs besides the server (Prometheus rules from its SLOs)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.cli.common import SetOpt, console, input_errors, load_cli_config

ops_app = typer.Typer(no_args_is_help=True, help="Operating a served model: alerting rules, dashboards, its runbook, pausing retraining.")


ConfigOpt = typer.Option(..., "--config", "-c", help="The model's config.")
ModelOpt = typer.Option(None, "--model", "-m", help="Registered model name (default: the config's name).")


@ops_app.command("rules")
def rules(
    config: Path = ConfigOpt,
    model: str = ModelOpt,
    out: Path = typer.Option(None, "--out", "-o", help="Rule file to write (default rules/<model>.yml)."),
    overrides: list[str] = SetOpt,
) -> None:
    """Prometheus recording and alerting rules from monitoring.slo: multi-window burn-rate pages and tickets on
    availability and latency, tickets on live quality, drift, a stale monitor and rollbacks."""
    cfg = load_cli_config(config, overrides)
    from tunesmith.ops import slo_rules, write_rules

    name = model or cfg.name
    path = write_rules(cfg, out or Path("rules") / f"{name}.yml", name)
    alerts = [r["alert"] for g in slo_rules(cfg, name)["groups"] for r in g["rules"] if "alert" in r]
    console.print(f"wrote {path}: {len(alerts)} alerts ({', '.join(alerts)})")
    console.print(f"check: promtool check rules {path}   load: rule_files: [{path}] in prometheus.yml")


@ops_app.command("dashboards")
def dashboards(
    config: Path = ConfigOpt,
    model: str = ModelOpt,
    out: Path = typer.Option(None, "--out", "-o", help="Folder to write (default dashboards/<model>/)."),
    overrides: list[str] = SetOpt,
) -> None:
    """Grafana dashboards (executive, on-call, debug) and a provisioning file, from the config's objectives and
    prices; they read the server's metrics, `ops rules`' recording rules and `monitor`'s gauges."""
    cfg = load_cli_config(config, overrides)
    from tunesmith.ops import write_dashboards

    name = model or cfg.name
    folder = out or Path("dashboards") / name
    written = write_dashboards(cfg, folder, name)
    console.print(f"wrote {len(written) - 1} dashboards and provisioning.yaml to {folder}: "
                  + ", ".join(p.name for p in written[:-1]))
    console.print(f"load: copy {folder / 'provisioning.yaml'} to /etc/grafana/provisioning/dashboards/; the burn-rate "
                  f"panels need `tunesmith ops rules` loaded in Prometheus")


@ops_app.command("runbook")
def runbook(
    config: Path = ConfigOpt,
    model: str = ModelOpt,
    out: Path = typer.Option(None, "--out", "-o", help="Markdown file to write (default runbooks/<model>.md)."),
    overrides: list[str] = SetOpt,
) -> None:
    """The model's runbook: each of its alerts, the checks with its names and paths filled in, roll back, pause
    retraining, who is on call (every registered version also carries it as RUNBOOK.md)."""
    cfg = load_cli_config(config, overrides)
    from tunesmith.ops import write_runbook

    name = model or cfg.name
    path = write_runbook(cfg, out or Path("runbooks") / f"{name}.md", name)
    console.print(f"wrote {path}; point monitoring.alerts.runbook_url at where you publish it "
                  "(e.g. https://wiki.example.com/ml/{model}/runbook#{alert})")


@ops_app.command("pause-retraining")
def pause_retraining(
    config: Path = ConfigOpt,
    model: str = ModelOpt,
    reason: str = typer.Option(..., "--reason", help="Why (shown by every `monitor --act` while paused)."),
    by: str = typer.Option(None, "--by", help="Who pauses (default: $USER)."),
) -> None:
    """Stop `tunesmith monitor --act` from retraining the model; triggers are still evaluated and reported."""
    import os

    from tunesmith.retrain.triggers import PauseBusy, pause

    cfg = load_cli_config(config, [])
    with input_errors(PauseBusy, only=True):
        record = pause(cfg, reason=reason, by=by or os.environ.get("USER") or "unknown", name=model)
    console.print(f"retraining of {model or cfg.name} paused by {record['by']} at {record['at']}: {record['reason']}")


@ops_app.command("resume-retraining")
def resume_retraining(config: Path = ConfigOpt, model: str = ModelOpt) -> None:
    """Let `tunesmith monitor --act` retrain the model again."""
    from tunesmith.retrain.triggers import PauseBusy, resume

    cfg = load_cli_config(config, [])
    with input_errors(PauseBusy, only=True):
        lifted = resume(cfg, name=model)
    name = model or cfg.name
    console.print(f"retraining of {name} resumed (the pause by {lifted['by']}: {lifted['reason']})" if lifted
                  else f"retraining of {name} was not paused")


def ui(
    config: Path = ConfigOpt,
    server: list[str] = typer.Option(None, "--server", help="A server of the model to show (repeat for each "
                                     "replica; default http://<serving.host>:<serving.port>)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Where the console listens."),
    port: int = typer.Option(8100, "--port"),
    allowed_host: list[str] = typer.Option(None, "--allowed-host", help="Host names the console answers to "
                                           "(default: loopback names when --host is loopback, else any)."),
) -> None:
    """The built-in console: registered models and versions (gates, lineage, reports, model cards, runbooks), each
    server's live rollout, objectives against the last monitor report, cost; promote, roll back and retire with
    confirmation. Signs in with the serving token."""
    import os

    import uvicorn

    from tunesmith.ops.console import create_console

    cfg = load_cli_config(config, [])
    token = os.environ.get(cfg.serving.auth_token_env, "")
    hosts = allowed_host or (["127.0.0.1", "localhost", "::1"] if host in ("127.0.0.1", "localhost", "::1") else None)
    with input_errors(ValueError, only=True):
        app = create_console(cfg, token=token, servers=server or None, allowed_hosts=hosts)
    console.print(f"tunesmith console for {cfg.name} on http://{host}:{port}/ (sign in with ${cfg.serving.auth_token_env})")
    uvicorn.run(app, host=host, port=port, log_level="warning")
