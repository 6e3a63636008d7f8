"""Prometheus recording and alerting rules for one served model, from its config's `monitoring.slo` (`tunesmith ops
rules`): what the SRE on call pages on and files tickets for.

    rules = slo_rules(cfg)                 # {"groups": [...]}, the Prometheus rule-file shape
    write_rules(cfg, "rules/sentiment.yml")

Availability and latency are multi-window, multi-burn-rate alerts (the SRE workbook, "Alerting on SLOs"): a page
when the error budget burns 14.4x too fast over 1h (confirmed over 5m) or 6x over 6h (confirmed over 30m), a ticket
at 1x over 3d (confirmed over 6h); the budget is 1 - the objective over 30 days. The ratios are recorded once per
window (`tunesmith:<sli>_errors:ratio_rate<window>`) from the serving metrics. Live quality, drift, a stale monitor
and an automatic rollback are tickets from the gauges `tunesmith monitor` writes (a textfile collector or push).
Every alert carries `severity`, `model` and (where the series has it) `version` labels and a `runbook_url`.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import Config, parse_window
from tunesmith.contracts import LABEL_LIVE

WINDOWS = ("5m", "30m", "1h", "6h", "3d")
# (severity, long window, short window, burn-rate factor)
BURNS = (("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0), ("ticket", "3d", "6h", 1.0))


def _go_float(value: float) -> str:
    """A bucket bound as prometheus_client writes it in the `le` label (0.5, 1.0, 60.0)."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(value)


def slis(cfg: Config, model: str) -> list[dict]:
    """The request SLIs of the config: name, objective, what counts as bad, and its error ratio over a window."""
    slo, sel = cfg.monitoring.slo, f'model="{model}"'
    out = [{"sli": "availability", "objective": slo.availability,
            "what": "requests answered with a server error (5xx)",
            # `or ... * 0`: a version without a single 5xx has ratio 0, not no ratio (dashboards show it)
            "ratio": lambda w: (f'(sum by (model, version) (rate(tunesmith_requests_total{{{sel},status=~"5.."}}[{w}]))'
                                f" or sum by (model, version) (rate(tunesmith_requests_total{{{sel}}}[{w}])) * 0)"
                                f" / sum by (model, version) (rate(tunesmith_requests_total{{{sel}}}[{w}]))")}]
    for name, objective, threshold in (("latency_p95", 0.95, slo.latency_p95_s), ("latency_p99", 0.99,
                                                                                   slo.latency_p99_s)):
        if threshold is None:
            continue
        le = _go_float(float(threshold))
        out.append({"sli": name, "objective": objective, "what": f"requests slower than {threshold:g}s",
                    "ratio": lambda w, le=le: (
                        f"1 - (sum by (model, version) (rate(tunesmith_request_latency_seconds_bucket{{{sel},"
                        f'le="{le}"}}[{w}])) / sum by (model, version) (rate(tunesmith_request_latency_seconds_count'
                        f"{{{sel}}}[{w}])))")})
    return out


def _record(sli: str, window: str) -> str:
    return f"tunesmith:{sli}_errors:ratio_rate{window}"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _alert(cfg: Config, model: str, name: str, expr: str, severity: str, summary: str, description: str,
           for_: str | None = None, runbook: str | None = None, **labels: str) -> dict:
    rule = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    owner = cfg.monitoring.alerts.owner
    rule["labels"] = {"severity": severity, "model": model, **({"owner": owner} if owner else {}), **labels}
    rule["annotations"] = {"summary": summary, "description": description,
                           "runbook_url": cfg.monitoring.alerts.runbook_url.format(alert=(runbook or name).lower(),
                                                                                   model=model)}
    return rule


def _burn_alerts(cfg: Config, model: str, sli: dict) -> list[dict]:
    budget = 1 - sli["objective"]
    out = []
    for severity, label in (("page", "FastBurn"), ("ticket", "SlowBurn")):
        pairs = [(long, short, factor) for s, long, short, factor in BURNS if s == severity]
        sel = f'{{model="{model}"}}'  # several models' rules can share one Prometheus
        expr = " or ".join(f"({_record(sli['sli'], long)}{sel} > {factor * budget:.6g} and "
                           f"{_record(sli['sli'], short)}{sel} > {factor * budget:.6g})"
                           for long, short, factor in pairs)
        windows = ", ".join(f"{factor:g}x over {long} and {short}" for long, short, factor in pairs)
        out.append(_alert(
            cfg, model, f"Tunesmith{_camel(sli['sli'])}{label}", expr, severity,
            f"{model}: the {sli['sli']} error budget is burning {'fast' if severity == 'page' else 'steadily'}",
            f"{model} version {{{{ $labels.version }}}}: {sli['what']} exceed the budget of "
            f"{budget:.4g} ({sli['objective']:g} objective over 30 days) at {windows}.",
            for_="2m" if severity == "page" else None, runbook=f"Tunesmith{_camel(sli['sli'].split('_')[0])}Burn", slo=sli["sli"]))
    return out


def _quality_alerts(cfg: Config, model: str) -> list[dict]:
    from tunesmith.families import get

    hooks = get(cfg.task).feedback
    slo = cfg.monitoring.slo
    sel = f'model="{model}"'
    out = []
    if hooks is not None and hooks.live == LABEL_LIVE:
        out.append(_alert(cfg, model, "TunesmithLiveAccuracyBudgetBurn",
                          f"tunesmith_error_budget_burn_rate{{{sel}}} > 1", "ticket",
                          f"{model}: live accuracy is spending its error budget too fast",
                          f"{model} version {{{{ $labels.version }}}}: live accuracy on labeled predictions is below "
                          f"its {slo.accuracy:g} objective (burn rate above 1).", runbook="TunesmithLiveQualityBelowSLO",
                          slo="live_accuracy"))
        if slo.macro_f1 is not None:
            out.append(_alert(cfg, model, "TunesmithLiveMacroF1BelowSLO",
                              f"tunesmith_live_macro_f1{{{sel}}} < {slo.macro_f1:g}", "ticket",
                              f"{model}: live macro-F1 is below its objective",
                              f"{model} version {{{{ $labels.version }}}}: live macro-F1 below {slo.macro_f1:g}.",
                              runbook="TunesmithLiveQualityBelowSLO", slo="live_macro_f1"))
    elif hooks is not None and slo.targets:
        directions = dict(hooks.live_metrics)
        for metric, bound in slo.targets.items():
            op = "<" if directions[metric] == "higher" else ">"
            out.append(_alert(cfg, model, f"TunesmithLive{_camel(metric.replace('@', '_at_'))}BelowSLO",
                              f'tunesmith_live_quality{{{sel},metric="{metric}"}} {op} {bound:g}', "ticket",
                              f"{model}: live {metric} misses its objective",
                              f"{model} version {{{{ $labels.version }}}}: live {metric} {op} {bound:g} "
                              f"(monitoring.slo.targets).", runbook="TunesmithLiveQualityBelowSLO", slo=f"live_{metric}"))
    return out


def _monitor_alerts(cfg: Config, model: str) -> list[dict]:
    sel = f'model="{model}"'
    _, every = parse_window(cfg.monitoring.alerts.monitor_every)
    return [
        _alert(cfg, model, "TunesmithDriftDetected", f"tunesmith_drift_detected{{{sel}}} == 1", "ticket",
               f"{model}: the served traffic drifted from the training data",
               f"tunesmith monitor declared drift for {model} (monitoring.drift.min_flags tests flagged); see its "
               "report and `tunesmith monitor --act`."),
        _alert(cfg, model, "TunesmithMonitorStale",
               f"time() - tunesmith_monitor_last_run_timestamp_seconds{{{sel}}} > {int(2 * every)}", "ticket",
               f"{model}: tunesmith monitor has not run",
               f"No monitor report for {model} in twice monitoring.alerts.monitor_every "
               f"({cfg.monitoring.alerts.monitor_every}): drift and live quality are not being watched."),
        *([_alert(cfg, model, "TunesmithHumanReviewRateHigh",
                  f"tunesmith_human_review_rate{{{sel}}} > {cfg.monitoring.slo.human_review_rate:g}", "ticket",
                  f"{model}: too many predictions go to human review",
                  f"More than {cfg.monitoring.slo.human_review_rate:.0%} of {model}'s served predictions were routed "
                  "to people (monitoring.slo.human_review_rate): the model is less sure than it was, or the review "
                  "thresholds are off.", slo="human_review_rate")]
          if cfg.monitoring.slo.human_review_rate is not None else []),
        _alert(cfg, model, "TunesmithChallengerRolledBack",
               f"increase(tunesmith_rollbacks_total{{{sel}}}[1h]) > 0", "ticket",
               f"{model}: a challenger was rolled back",
               f"The server rolled back {model} version {{{{ $labels.version }}}} ({{{{ $labels.reason }}}}); the "
               "champion answers all traffic."),
    ]


def slo_rules(cfg: Config, name: str | None = None) -> dict:
    """The rule file for `name` (default cfg.name): recording rules for every SLI and window, then the alerts."""
    model = name or cfg.name
    found = slis(cfg, model)
    recording = [{"record": _record(s["sli"], w), "expr": s["ratio"](w), "labels": {"model": model}}
                 for s in found for w in WINDOWS]
    alerts = [a for s in found for a in _burn_alerts(cfg, model, s)]
    alerts += _quality_alerts(cfg, model) + _monitor_alerts(cfg, model)
    return {"groups": [{"name": f"tunesmith-{model}-slis", "rules": recording},
                       {"name": f"tunesmith-{model}-alerts", "rules": alerts}]}


def write_rules(cfg: Config, path: str | Path, name: str | None = None) -> Path:
    import yaml

    from tunesmith.io import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Prometheus rules for {name or cfg.name}, written by `tunesmith ops rules` from its config's "
              "monitoring.slo.\n# Check them with `promtool check rules` and load them with rule_files: in "
              "prometheus.yml.\n")
    atomic_write_text(path, header + yaml.safe_dump(slo_rules(cfg, name), sort_keys=False, width=120))
    return path
