"""`tunesmith ops`: what operating a served model needs besides the server (Prometheus rules from its SLOs)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunesmith.cli.common import SetOpt, console, load_cli_config

ops_app = typer.Typer(no_args_is_help=True, help="Operating a served model: Prometheus alerting rules, Grafana dashboards.")


@ops_app.command("rules")
def rules(
    config: Path = typer.Option(..., "--config", "-c", help="The model's config (monitoring.slo, monitoring.alerts)."),
    model: str = typer.Option(None, "--model", "-m", help="Registered model name (default: the config's name)."),
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
    config: Path = typer.Option(..., "--config", "-c", help="The model's config (monitoring.slo, cost)."),
    model: str = typer.Option(None, "--model", "-m", help="Registered model name (default: the config's name)."),
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
