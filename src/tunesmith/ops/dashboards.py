"""Grafana dashboards for one served model (`tunesmith ops dashboards`), built with Grafana's own
grafana-foundation-sdk: an executive, an on-call and a debug dashboard, and a provisioning file.

    docs = dashboards(cfg)                   # {"executive": {...}, "oncall": {...}, "debug": {...}} dashboard JSON
    write_dashboards(cfg, "dashboards/")     # <uid>.json for each, and provisioning.yaml for Grafana
    targets(docs["oncall"])                  # [(panel title, PromQL), ...]: what tests run through Prometheus

Every query reads series that exist once the model is served and monitored: the server's `tunesmith_*` metrics,
the recording rules of `tunesmith ops rules` (`tunesmith:<sli>_errors:ratio_rate<window>`) and the gauges `tunesmith
monitor` writes. Panels follow the config: the classifier's live accuracy, macro-F1 and confusion counts or the
other families' live-quality metrics, one burn-rate series per objective, money only where `cost:` has a price.
Queries use Grafana's `$__rate_interval` and a `datasource` variable (pick the Prometheus at import).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config import Config
from tunesmith.contracts import LABEL_LIVE

KINDS = ("executive", "oncall", "debug")
TITLES = {"executive": "overview", "oncall": "on-call", "debug": "debug"}
RATE = "$__rate_interval"


@dataclass
class Spec:
    """One panel: its queries (PromQL, legend), kind (timeseries, stat, table), unit and SLO thresholds."""

    title: str
    queries: list[tuple[str, str]]
    description: str
    unit: str = "short"
    kind: str = "timeseries"
    thresholds: list[tuple[float, str]] = field(default_factory=list)  # (value, colour) above the green base


def _sel(model: str, extra: str = "") -> str:
    return "{" + f'model="{model}"' + (f",{extra}" if extra else "") + "}"


def _classifier(cfg: Config) -> bool:
    from tunesmith.families import get

    hooks = get(cfg.task).feedback
    return hooks is not None and hooks.live == LABEL_LIVE


def _burn_queries(cfg: Config, model: str) -> list[tuple[str, str]]:
    from tunesmith.ops.rules import slis

    out = [(f"tunesmith:{s['sli']}_errors:ratio_rate1h{_sel(model)} / {1 - s['objective']:.6g}",
            f"{s['sli']} v{{{{version}}}}") for s in slis(cfg, model)]
    if _classifier(cfg):
        out.append((f"tunesmith_error_budget_burn_rate{_sel(model)}", "live accuracy v{{version}}"))
    return out


def _specs(cfg: Config, model: str) -> dict[str, list[tuple[str, list[Spec]]]]:
    s, slo = _sel(model), cfg.monitoring.slo
    by_version = f"sum by (version, role) (rate(tunesmith_requests_total{s}[{RATE}]))"
    if _classifier(cfg):
        quality = Spec("Live quality vs objective", [(f"tunesmith_live_macro_f1{s}", "macro-F1 v{{version}}"),
                                                     (f"tunesmith_live_accuracy{s}", "accuracy v{{version}}")],
                       f"Labeled predictions in the monitor's window (tunesmith monitor); objectives accuracy "
                       f"{slo.accuracy:g}" + (f", macro-F1 {slo.macro_f1:g}" if slo.macro_f1 else "") + ".",
                       unit="percentunit", thresholds=[(slo.macro_f1 or slo.accuracy, "green")])
    else:
        targets = ", ".join(f"{k} {v:g}" for k, v in slo.targets.items()) or "none set (monitoring.slo.targets)"
        quality = Spec("Live quality vs objective", [(f"tunesmith_live_quality{s}", "{{metric}} v{{version}}")],
                       f"The family's live-quality metrics on predictions with feedback (tunesmith monitor); "
                       f"objectives: {targets}.")
    cost = [Spec("Core-seconds per 1,000 answers",
                 [(f"sum by (version) (rate(tunesmith_inference_core_seconds_total{s}[{RATE}])) / sum by (version) "
                   f"(rate(tunesmith_batch_size_sum{s}[{RATE}])) * 1000", "v{{version}}")],
                 "Busy cores (batch wall time x threads) per 1,000 answered items, by version.", unit="s")]
    if cfg.cost.priced:
        cur = cfg.cost.currency
        cost.append(Spec(f"Cost per 1,000 answers ({cur})",
                         [(f"tunesmith_cost_per_1k_inferences{s}", "v{{version}}")],
                         f"The server's metered busy time at the config's cost: prices ({cur}), since each version "
                         "loaded.", unit="currency" + cur if len(cur) == 3 else "short"))
    latency = [(f"histogram_quantile(0.95, sum by (le, version, role) "
                f"(rate(tunesmith_request_latency_seconds_bucket{s}[{RATE}])))", "p95 v{{version}} {{role}}")]
    failed = _sel(model, 'status=~"5.."')
    errors_5xx = f"sum by (version) (rate(tunesmith_requests_total{failed}[{RATE}]))"
    total = f"sum by (version) (rate(tunesmith_requests_total{s}[{RATE}]))"
    specs = {
        "executive": [
            ("Quality", [quality, Spec("Error budget burn rate (1h)", _burn_queries(cfg, model),
                                       "How many times faster than the 30-day budget allows each objective's errors "
                                       "are spent; 14.4 over 1h pages, 1 over 3d files a ticket (tunesmith ops "
                                       "rules).", thresholds=[(1, "orange"), (14.4, "red")])]),
            ("Human review", [Spec("Human review rate vs objective", [(f"tunesmith_human_review_rate{s}", "rate")],
                                   "Share of the monitor window's served predictions routed to people (tunesmith "
                                   "review)." + (f" Objective: at most {slo.human_review_rate:.0%}."
                                                 if slo.human_review_rate else ""), unit="percentunit",
                                   thresholds=[(slo.human_review_rate, "red")] if slo.human_review_rate else []),
                              Spec("Review backlog", [(f"tunesmith_review_backlog{s}", "waiting")],
                                   "Review items nobody has labeled yet.")]),
            ("Traffic and cost", [Spec("Answers per second", [(by_version, "v{{version}} {{role}}")],
                                       "Requests answered, by version and role.", unit="reqps"), *cost]),
        ],
        "oncall": [
            ("Latency and errors", [
                Spec("p95 latency vs objective", latency, "Arrival to answer, by version and role."
                     + (f" Objective: 95% within {slo.latency_p95_s:g}s." if slo.latency_p95_s else ""), unit="s",
                     thresholds=[(slo.latency_p95_s, "red")] if slo.latency_p95_s else []),
                Spec("Server errors (5xx share)", [(f"({errors_5xx} or {total} * 0) / {total}", "v{{version}}")],
                     f"Share of answers that were a server error; the availability objective is {slo.availability:g}.",
                     unit="percentunit", thresholds=[(1 - slo.availability, "red")]),
            ]),
            ("Rollout", [
                Spec("Versions serving", [(f"tunesmith_model_loaded{s}", "v{{version}} {{role}}"),
                                          ("tunesmith_canary_percent", "canary %")],
                     "Which versions answer, in which role, and the challenger's canary share now."),
                Spec("Rollbacks (last hour)", [(f"sum by (version, reason) (increase(tunesmith_rollbacks_total{s}"
                                                f"[1h]))", "v{{version}} {{reason}}")],
                     "Automatic rollbacks of a challenger by reason: see the server log and `tunesmith models show`.",
                     thresholds=[(1, "red")]),
            ]),
            ("Failing requests", [
                Spec("Answers by route and status (last hour)",
                     [(f"sort_desc(sum by (route, status) (increase(tunesmith_requests_total{s}[1h])))",
                       "{{route}} {{status}}")],
                     "Every status per route: 4xx are callers' inputs (their request ids are in the prediction "
                     "log), 503/504 the model.", kind="table"),
                Spec("Refused before inference (last hour)",
                     [("sum by (reason) (increase(tunesmith_rejected_total[1h]))", "{{reason}}")],
                     "401 (no or wrong token), 413 (body too large), 429 (queue full)."),
            ]),
        ],
        "debug": [
            ("Per version", [
                Spec("Latency percentiles", [(f"histogram_quantile({q}, sum by (le, version, role) "
                                              f"(rate(tunesmith_request_latency_seconds_bucket{s}[{RATE}])))",
                                              f"p{round(q * 100)} v{{{{version}}}} {{{{role}}}}") for q in (0.5, 0.99)],
                     "Median and tail latency, by version and role.", unit="s"),
                Spec("Batch size", [(f"histogram_quantile({q}, sum by (le, version) "
                                     f"(rate(tunesmith_batch_size_bucket{s}[{RATE}])))", f"p{round(q * 100)} v{{{{version}}}}")
                                    for q in (0.5, 0.95)], "Items per forward pass (micro-batching)."),
                Spec("Queue depth", [(f"tunesmith_queue_depth{s}", "v{{version}}")],
                     "Requests waiting for a batch; 429s start at serving.max_queue."),
                Spec("Busy cores", [(f"sum by (version, device) (rate(tunesmith_inference_core_seconds_total{s}"
                                     f"[{RATE}]))", "v{{version}} {{device}}")],
                     "Cores held by forward passes, by version."),
                Spec("Inference backend", [(f"tunesmith_inference_backend{s}", "v{{version}} {{backend}}")],
                     "What runs each version (fp32, bf16, int8, onnx), after its check against fp32."),
            ]),
            ("Drift and live labels", [
                Spec("Drift test statistics", [(f"tunesmith_drift_statistic{s}", "{{test}}")],
                     "The last monitor run's drift tests (tunesmith monitor)."),
                Spec("Drift flagged", [(f"tunesmith_drift_flagged{s}", "{{test}}"),
                                       (f"tunesmith_drift_detected{s}", "declared")],
                     "1 per flagged test; declared when monitoring.drift.min_flags tests flag."),
                Spec("Labeled predictions in the window", [(f"tunesmith_live_labels{s}", "v{{version}}")],
                     "Feedback and review labels the live-quality figures rest on."),
                Spec("Monitor age", [(f"time() - tunesmith_monitor_last_run_timestamp_seconds{s}", "age")],
                     "Seconds since the last monitor report.", unit="s", kind="stat",
                     thresholds=[(2 * _seconds(cfg.monitoring.alerts.monitor_every), "red")]),
            ]),
        ],
    }
    if _classifier(cfg):
        specs["debug"][1][1].append(Spec(
            "Live confusion (truth x predicted)", [(f"tunesmith_live_confusion{s}", "{{truth}} -> {{predicted}}")],
            "Labeled predictions in the monitor's window, by true and predicted label.", kind="table"))
    return specs


def _seconds(duration: str) -> float:
    from tunesmith.config import parse_window

    return parse_window(duration)[1]


def _panel(spec: Spec, panel_id: int, datasource):
    from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
    from grafana_foundation_sdk.models.common import (
        GraphTresholdsStyleMode,
        LegendDisplayMode,
        LegendPlacement,
        SortOrder,
        TableCellHeight,
        TooltipDisplayMode,
    )
    from grafana_foundation_sdk.models.dashboard import Threshold, ThresholdsMode

    builder = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}[spec.kind]()
    builder = builder.id(panel_id).title(spec.title).description(spec.description).datasource(datasource)
    builder = builder.unit(spec.unit).span(12 if spec.kind != "stat" else 6).height(8)
    steps = [Threshold(None, "green"), *(Threshold(float(v), c) for v, c in spec.thresholds)]
    builder = builder.thresholds(dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
    if spec.kind == "timeseries":
        builder = builder.legend(common.VizLegendOptions().display_mode(LegendDisplayMode.TABLE)
                                 .placement(LegendPlacement.BOTTOM).show_legend(True).calcs(["lastNotNull", "max"]))
        builder = builder.tooltip(common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING))
        builder = builder.line_width(1).fill_opacity(10).span_nulls(True)
        if spec.thresholds:  # the objective as a dashed line
            builder = builder.thresholds_style(common.GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED))
    elif spec.kind == "stat":
        builder = builder.reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    else:
        builder = builder.show_header(True).cell_height(TableCellHeight.SM)
    for i, (expr, legend) in enumerate(spec.queries):
        query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        builder = builder.with_target(query.instant() if spec.kind == "table" else query.range())
    return builder


def dashboards(cfg: Config, name: str | None = None) -> dict[str, dict]:
    """The three dashboards of `name` (default cfg.name) as Grafana dashboard JSON, by kind."""
    from grafana_foundation_sdk.builders import dashboard
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    model = name or cfg.name
    datasource = DataSourceRef(type_val="prometheus", uid="${datasource}")
    out = {}
    for kind, rows in _specs(cfg, model).items():
        board = (dashboard.Dashboard(f"tunesmith {model}: {TITLES[kind]}").uid(uid(model, kind))
                 .tags(["tunesmith", f"model:{model}", kind]).refresh("30s").time("now-6h", "now")
                 .timezone("browser").with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus")
                                                    .type("prometheus"))
                 .description(f"Generated by `tunesmith ops dashboards` from {model}'s config; regenerate, do not "
                              "edit."))
        panel_id = 1
        for row_title, specs in rows:
            board = board.with_row(dashboard.Row(row_title).id(panel_id))
            panel_id += 1
            for spec in specs:
                board = board.with_panel(_panel(spec, panel_id, datasource))
                panel_id += 1
        out[kind] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return out


def uid(model: str, kind: str) -> str:
    """A dashboard uid (Grafana allows 40 characters): the model name cut to fit, then the kind."""
    return f"ts-{model[:40 - 4 - len(kind)]}-{kind}"


def targets(board: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of a dashboard JSON, rows' panels included."""
    found = []
    for panel in board.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            found += [(inner["title"], t["expr"]) for t in inner.get("targets") or [] if t.get("expr")]
    return found


def provisioning(out_dir: Path) -> dict:
    """Grafana's dashboard provisioning file: load every JSON file of `out_dir` into a "tunesmith" folder."""
    return {"apiVersion": 1, "providers": [{
        "name": "tunesmith", "folder": "tunesmith", "type": "file", "disableDeletion": False,
        "updateIntervalSeconds": 60, "allowUiUpdates": False,
        "options": {"path": str(Path(out_dir).resolve()), "foldersFromFilesStructure": False}}]}


def write_dashboards(cfg: Config, out_dir: str | Path, name: str | None = None) -> list[Path]:
    """`<uid>.json` for each dashboard and `provisioning.yaml` (Grafana's provisioning/dashboards/ format)."""
    import yaml

    from tunesmith.io import atomic_write_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for board in dashboards(cfg, name).values():
        written.append(atomic_write_text(out_dir / f"{board['uid']}.json", json.dumps(board, indent=2) + "\n"))
    header = ("# Grafana dashboard provisioning, written by `tunesmith ops dashboards`: copy to "
              "/etc/grafana/provisioning/dashboards/ (the path below is where the JSON files are).\n")
    written.append(atomic_write_text(out_dir / "provisioning.yaml",
                                     header + yaml.safe_dump(provisioning(out_dir), sort_keys=False)))
    return written
