"""One model's runbook (`tunesmith ops runbook`, and RUNBOOK.md beside every registered version): what each of its
alerts means, the checks to run with its own names, URLs and paths filled in, how to roll back, how to pause
retraining, and who is on call.

    text = runbook(cfg)                      # markdown; one section per alert group, anchored as runbook_url links
    write_runbook(cfg, "runbooks/sentiment.md")

The alerts are the ones `tunesmith ops rules` writes from the same config, so the page and the rules never disagree:
an alert's `runbook_url` ends in `#<group>` (`monitoring.alerts.runbook_url`, `{model}` and `{alert}` filled in),
and the page has a section with that anchor. docs/runbooks.md is the same knowledge for any model.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import Config
from tunesmith.config.base import redact_url

# alert group (the runbook_url anchor) -> (title, what it means, checks, actions); {placeholders} are filled per model
GROUPS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "tunesmithavailabilityburn": (
        "Availability error budget burning",
        "Requests answered with a 5xx spend the budget of the availability objective ({availability:g} over 30 "
        "days) too fast: 14.4x over 1h or 6x over 6h pages, 1x over 3 days files a ticket.",
        ["`{metrics} | grep 'tunesmith_requests_total'`: which route, version, role and status fail (504: waited "
         "past its deadline in the queue; 503: the model failed on an input, or no model loaded)",
         "the server log: every failed request logs its request id and the exception type",
         "`tunesmith models show {model}{where}`: did a promotion happen just before?",
         "the on-call dashboard `{uid_oncall}`: 5xx share and answers by status"],
        ["a new champion fails: `{rollback}` (servers load the previous champion within {poll:g} s)",
         "overload: add replicas; serving.max_queue ({max_queue}) bounds what waits (429 beyond it)"]),
    "tunesmithlatencyburn": (
        "Latency error budget burning",
        "More requests than the objective allows are slower than {latency}.",
        ["`{metrics} | grep -E 'tunesmith_(request_latency_seconds|queue_depth|batch_size)'`: by version and role",
         "`tunesmith_inference_backend`: did an optimisation fall back to fp32?",
         "the debug dashboard `{uid_debug}`: latency percentiles, batch sizes, queue depth, busy cores"],
        ["a slow new version: `{rollback}`", "load: add replicas"]),
    "tunesmithlivequalitybelowslo": (
        "Live quality below its objective",
        "The quality measured on served predictions with feedback misses the objective ({quality}).",
        ["`tunesmith monitor --config {config}`: the live-quality table per version (with a CI) and the drift tests",
         "is one version worse (a challenger) or every version (the traffic moved)?",
         "`tunesmith review --config {config}`: label the uncertain and recent predictions to firm the figures up"],
        ["a worse challenger: `{retire}` takes it out of traffic (servers drop it within {poll:g} s)",
         "the traffic moved: `tunesmith monitor --config {config} --act` retrains on the new labels and registers "
         "a gated challenger (not while retraining is paused)"]),
    "tunesmithdriftdetected": (
        "Drift detected",
        "The served traffic differs from the training data (at least {min_flags} drift tests flagged).",
        ["the monitor report `{report_dir}/report.html`: the drift table and plots",
         "is the new traffic in scope for {model}?"],
        ["in scope, with labels: `tunesmith monitor --config {config} --act`",
         "in scope, too few labels: `tunesmith review --config {config}` queues the new and the uncertain"]),
    "tunesmithmonitorstale": (
        "Monitor not running",
        "No monitor report for twice monitoring.alerts.monitor_every ({every}): drift and live quality are "
        "not watched.",
        ["the cron job or scheduler that runs `tunesmith monitor --config {config}`, and its log",
         "the node exporter's textfile directory is `{report_dir}` (metrics.prom)"],
        ["run `tunesmith monitor --config {config}` by hand, then fix the schedule"]),
    "tunesmithhumanreviewratehigh": (
        "Too many predictions go to human review",
        "More than {review_rate} of the served predictions were routed to people: the model is less sure than it "
        "was (new traffic, a worse version), or review.confidence_threshold / review.random_share route too much.",
        ["`tunesmith monitor --config {config}`: the human-review line (rate, backlog) and the drift tests",
         "the review queue's sources: `tunesmith review --config {config}` prints what it added and why"],
        ["new traffic: label the backlog (`tunesmith review`), then `tunesmith monitor --config {config} --act`",
         "thresholds: lower review.confidence_threshold or review.random_share (people's time is the budget)"]),
    "tunesmithchallengerrolledback": (
        "A challenger was rolled back",
        "A server rolled a challenger back on its own error rate or p95 latency (the `reason` label); the champion "
        "answers all traffic. Nothing to do at once.",
        ["the server log's `ROLLBACK` line and the version's tags: `tunesmith models show {model}{where}`",
         "the version's evaluation report (its MLflow run)"],
        ["fix what the reason names and register a new challenger; the rolled-back version is never loaded again"]),
}


def _facts(cfg: Config, name: str) -> dict:
    from tunesmith.ops.dashboards import uid

    slo, serving = cfg.monitoring.slo, cfg.serving
    host = "localhost" if serving.host in ("0.0.0.0", "::") else serving.host
    metrics = f"curl -s -H \"Authorization: Bearer ${serving.metrics_token_env or serving.auth_token_env}\" " \
              f"http://{host}:{serving.port}/metrics"
    config = cfg.source_path or "<config>"
    latency = " and ".join(f"{t:g} s for {p}% of requests" for p, t in ((95, slo.latency_p95_s), (99, slo.latency_p99_s))
                           if t is not None) or "no latency objective"
    if slo.targets:
        quality = ", ".join(f"{k} {v:g}" for k, v in slo.targets.items())
    else:
        quality = f"accuracy {slo.accuracy:g}" + (f", macro-F1 {slo.macro_f1:g}" if slo.macro_f1 else "")
    where = f" --config {config}" if cfg.source_path else ""
    return {"model": name, "config": config, "metrics": metrics, "where": where,
            "rollback": f"tunesmith models rollback {name}{where} --reason '<why>'",
            "retire": f"tunesmith models retire {name}{where} --reason '<why>'",
            "availability": slo.availability, "latency": latency, "quality": quality, "poll": serving.poll_interval_s,
            "max_queue": serving.max_queue, "min_flags": cfg.monitoring.drift.min_flags,
            "every": cfg.monitoring.alerts.monitor_every, "report_dir": f"{cfg.monitoring.report_dir}/{name}",
            "uid_oncall": uid(name, "oncall"), "uid_debug": uid(name, "debug"),
            "review_rate": f"{slo.human_review_rate:.0%}" if slo.human_review_rate is not None else "the objective"}


def runbook(cfg: Config, name: str | None = None) -> str:
    """The markdown runbook of `name` (default cfg.name)."""
    from tunesmith.ops.rules import slo_rules

    name = name or cfg.name
    facts = _facts(cfg, name)
    owner = cfg.monitoring.alerts.owner or cfg.registry.owner
    alerts: dict[str, list[dict]] = {}
    for rule in (r for g in slo_rules(cfg, name)["groups"] for r in g["rules"] if "alert" in r):
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[-1]
        alerts.setdefault(anchor, []).append(rule)
    lines = [f"# Runbook: {name}", "",
             f"- **On call:** {owner or 'nobody named (set monitoring.alerts.owner in the config)'}",
             f"- **Family:** {cfg.task}; base model `{cfg.model.base}`",
             f"- **Config:** `{facts['config']}`; registry `{redact_url(cfg.registry.tracking_uri or 'mlruns (local)')}`",
             f"- **Served at:** http://{cfg.serving.host}:{cfg.serving.port} (champion"
             + (f", challenger on a {cfg.serving.canary.percent:g}% canary" if cfg.serving.canary.percent else "")
             + ")",
             f"- **Prediction log:** `{redact_url(cfg.serving.predictions.url or '.tunesmith/predictions.db')}`; "
             f"monitor reports `{facts['report_dir']}/`",
             f"- **Dashboards:** `{facts['uid_oncall']}`, `{facts['uid_debug']}` (`tunesmith ops dashboards`)", "",
             "## First minutes", "",
             f"1. `tunesmith models show {name}{facts['where']}`: champion, challenger, their gates and lineage",
             f"2. `{facts['metrics']}`: what the server answers now",
             f"3. `tunesmith monitor --config {facts['config']}`: drift and live quality on the recent window",
             "", "## Roll back", "",
             f"- The champion: `{facts['rollback']}` moves `champion` to the version before the last promote; every "
             f"server loads it within serving.poll_interval_s ({facts['poll']:g} s), without a restart.",
             "- A challenger on a canary rolls back on its own (serving.rollback, judged over every replica with "
             f"serving.shared_state); to take it out at once: `{facts['retire']}`.",
             "", "## Pause retraining", "",
             f"- `tunesmith ops pause-retraining --config {facts['config']} --reason '<why>'`: `monitor --act` keeps "
             "reporting what fires but retrains nothing.",
             f"- `tunesmith ops resume-retraining --config {facts['config']}` lifts it; a firing seen meanwhile is "
             "acted on at the next run.", ""]
    for anchor, (title, meaning, checks, actions) in GROUPS.items():
        found = alerts.get(anchor)
        if not found:
            continue
        lines += [f'<a id="{anchor}"></a>', f"## {title}", "", meaning.format(**facts), "",
                  "| alert | severity | fires when |", "|---|---|---|"]
        lines += [f"| `{r['alert']}` | {r['labels']['severity']} | `{r['expr']}` |" for r in found]
        lines += ["", "Check:", *(f"- {c.format(**facts)}" for c in checks), "",
                  "Act:", *(f"- {a.format(**facts)}" for a in actions), ""]
    return "\n".join(lines)


def write_runbook(cfg: Config, path: str | Path, name: str | None = None) -> Path:
    from tunesmith.io import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, runbook(cfg, name))
