"""The monitor report's files: latest.json, report.html (drift and live-accuracy sections, plots inline) and
metrics.prom (Prometheus text format, for node_exporter's textfile collector or any scraper that reads files).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from matplotlib.figure import Figure
from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from tunesmith.evaluation.plots import to_data_uri
from tunesmith.io import atomic_write_json, atomic_write_text

_CSS = ("body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .6rem}"
        "th{background:#f5f5f5}.flag{background:#fce8e6;color:#a50e0e;font-weight:600}"
        ".ok{background:#e6f4ea;color:#137333}img{max-width:100%}")


def _e(value) -> str:
    return escape(str(value), quote=True)


def _num(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def drift_section_html(drift: dict) -> str:
    """The drift section: verdict, one row per test, and the prediction-share plot."""
    parts = ["<h2>Drift</h2>"]
    if drift.get("status") == "n/a":
        return parts[0] + f"<p>n/a: {_e(drift.get('note', ''))}</p>"
    verdict = "DRIFT" if drift["detected"] else "no drift"
    parts.append(f"<p class='{'flag' if drift['detected'] else 'ok'}'>{verdict}: {len(drift['flagged'])} test(s) "
                 f"flagged (declared at {drift['min_flags']}); {drift['rows']} predictions from "
                 f"{_e(drift['window_start'])} to {_e(drift['window_end'])}, against the reference of version "
                 f"{drift['reference_version']}</p>")
    rows = "".join(
        f"<tr class='{'flag' if t['flagged'] else ''}'><td>{_e(name)}</td><td>{_e(t['kind'])}</td>"
        f"<td>{_num(t['statistic'])}</td><td>{_num(t['p_value'])}</td><td>{'yes' if t['flagged'] else 'no'}</td></tr>"
        for name, t in drift["tests"].items())
    parts.append(f"<table><tr><th>test</th><th>kind</th><th>statistic</th><th>p-value</th><th>flagged</th></tr>"
                 f"{rows}</table>")
    psi = drift["tests"].get("label_psi")
    if psi:
        parts.append(f"<img alt='predicted labels' src='{_label_plot(psi)}'>")
    return "".join(parts)


def _label_plot(psi: dict) -> str:
    labels = list(psi["reference_share"])
    fig = Figure(figsize=(6, 2.8))
    ax = fig.add_subplot()
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [psi["reference_share"][k] for k in labels], width=0.4, label="reference")
    ax.bar([x + 0.2 for x in xs], [psi["window_share"][k] for k in labels], width=0.4, label="window")
    ax.set_xticks(list(xs), [str(k).replace("$", r"\$") for k in labels])
    ax.set_ylabel("share of predictions")
    ax.set_title(f"predicted labels (PSI {psi['statistic']:.3f})")
    ax.legend()
    return to_data_uri(fig)


def live_section_html(live: dict) -> str:
    if live.get("kind") == "quality":
        return quality_section_html(live)
    slo = live["slo"]
    parts = [f"<h2>Live accuracy</h2><p>SLO: accuracy &ge; {slo['accuracy']:g}"
             + (f", macro-F1 &ge; {slo['macro_f1']:g}" if slo["macro_f1"] is not None else "")
             + f"; error budget {1 - slo['accuracy']:.3g}; buckets of {_e(slo['bucket'])}</p>"]
    if not live["versions"]:
        return parts[0] + "<p>no labeled predictions in the window yet (POST /v1/feedback or tunesmith feedback import)</p>"
    rows = "".join(
        f"<tr class='{'flag' if v['status'] == 'breach' else ''}'><td>{version}</td><td>{_e(', '.join(v['roles']))}</td>"
        f"<td>{v['n']}</td><td>{_num(v['accuracy'])}</td><td>{_num(v['macro_f1'])}</td><td>{_num(v['burn_rate'])}</td>"
        f"<td>{_e(v['status'])} {_e(v['note'])}</td></tr>" for version, v in live["versions"].items())
    parts.append("<table><tr><th>version</th><th>roles</th><th>labels</th><th>accuracy</th><th>macro-F1</th>"
                 f"<th>burn rate</th><th>SLO</th></tr>{rows}</table>")
    parts.append(f"<img alt='live accuracy' src='{_live_plot(live)}'>")
    return "".join(parts)


def quality_section_html(live: dict) -> str:
    """A family's live quality: its metrics per version, the CI of the first, the SLO verdict, the series plot."""
    targets = ", ".join(f"{_e(m)} {'&ge;' if live['metrics'][m] == 'higher' else '&le;'} {t:g}"
                        for m, t in live["targets"].items()) or "none set (monitoring.slo.targets)"
    head = f"<h2>Live quality</h2><p>SLO targets: {targets}; buckets of {_e(live['bucket'])}</p>"
    if live.get("status") == "n/a":
        return head + f"<p>{_e(live['note'])}</p>"
    if not live["versions"]:
        return head + "<p>no predictions with feedback in the window yet (POST /v1/feedback or tunesmith feedback " \
                      "import)</p>"
    metrics, primary = list(live["metrics"]), live["primary"]
    cells = "".join(f"<th>{_e(m)}</th>" for m in metrics)
    rows = "".join(
        f"<tr class='{'flag' if v['status'] == 'breach' else ''}'><td>{version}</td><td>{_e(', '.join(v['roles']))}</td>"
        f"<td>{v['n']}</td>" + "".join(f"<td>{_num(v.get(m))}</td>" for m in metrics)
        + f"<td>{_ci(v['ci'])}</td><td>{_e(v['status'])} {_e(v['note'])}</td></tr>"
        for version, v in live["versions"].items())
    table = (f"<table><tr><th>version</th><th>roles</th><th>with feedback</th>{cells}<th>{_e(primary)} 95% CI</th>"
             f"<th>SLO</th></tr>{rows}</table>")
    checks = "".join(
        f"<li>version {version}: scheduled checks run {_e(v['checks']['at'])}"
        + (f"; failed: {_e(', '.join(v['checks']['failed']))}" if v["checks"]["failed"] else "; all passed") + "</li>"
        for version, v in live["versions"].items() if v.get("checks"))
    checks = f"<ul>{checks}</ul>" if checks else ""
    return head + table + checks + f"<img alt='live quality' src='{_quality_plot(live)}'>"


def _ci(ci: dict | None) -> str:
    return "-" if not ci else f"[{ci['low']:.3f}, {ci['high']:.3f}]"


def _quality_plot(live: dict) -> str:
    fig = Figure(figsize=(7, 3))
    ax = fig.add_subplot()
    primary = live["primary"]
    for version, v in live["versions"].items():
        xs = [datetime.fromisoformat(p["start"]) for p in v["series"]]
        ax.plot(xs, [p[primary] for p in v["series"]], marker="o", label=f"v{version} {primary}")
    if primary in live["targets"]:
        ax.axhline(live["targets"][primary], color="red", linewidth=1, label=f"{primary} SLO")
    ax.set_title(f"live {primary} per version")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return to_data_uri(fig)


def _live_plot(live: dict) -> str:
    fig = Figure(figsize=(7, 3))
    ax = fig.add_subplot()
    for version, v in live["versions"].items():
        xs = [datetime.fromisoformat(p["start"]) for p in v["series"]]
        ax.plot(xs, [p["macro_f1"] for p in v["series"]], marker="o", label=f"v{version} macro-F1")
        ax.plot(xs, [p["accuracy"] for p in v["series"]], marker=".", linestyle="--", label=f"v{version} accuracy")
    if live["slo"]["macro_f1"] is not None:
        ax.axhline(live["slo"]["macro_f1"], color="red", linewidth=1, label="macro-F1 SLO")
    ax.set_ylim(0, 1.02)
    ax.set_title("live accuracy per version")
    ax.legend(fontsize=7)
    fig.autofmt_xdate()
    return to_data_uri(fig)


def render_html(report: dict) -> str:
    head = (f"<h1>tunesmith monitor: {_e(report['model'])}</h1><p>window {_e(report['window'])}: "
            f"{report['predictions']} predictions, {report['labeled']} labeled; generated {_e(report['generated_at'])}</p>")
    trig = report.get("triggers")
    trig_html = ""
    if trig:
        fired = ", ".join(t["name"] for t in trig["fired"]) or "none"
        trig_html = f"<h2>Retrain triggers</h2><p>fired: {_e(fired)}; action: {_e(trig.get('action', '-'))}</p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>monitor {_e(report['model'])}</title>"
            f"<style>{_CSS}</style></head><body>{head}{drift_section_html(report['drift'])}"
            f"{live_section_html(report['live'])}{_review_html(report.get('review'))}{trig_html}</body></html>")


def _review_html(review: dict | None) -> str:
    if not review:
        return ""
    if review["rate"] is None:
        return f"<h2>Human review</h2><p>{_e(review['note'] or 'no predictions in the window')}</p>"
    objective = f" (objective: at most {review['objective']:.1%})" if review["objective"] is not None else ""
    return (f"<h2>Human review</h2><p>{review['routed']} of the window's predictions routed to people: "
            f"{review['rate']:.1%}{_e(objective)}, status {_e(review['status'])}; {review['pending']} items waiting "
            f"for a reviewer.</p>")


def gauges(report: dict) -> CollectorRegistry:
    """The report as Prometheus gauges (a fresh registry: the textfile holds only the last report)."""
    registry = CollectorRegistry()
    model = report["model"]
    drift = report["drift"]
    stat = Gauge("tunesmith_drift_statistic", "Drift test statistic of the last monitor run",
                 ["model", "test"], registry=registry)
    pval = Gauge("tunesmith_drift_p_value", "Drift test p-value of the last monitor run", ["model", "test"],
                 registry=registry)
    flag = Gauge("tunesmith_drift_flagged", "1 when the drift test flagged", ["model", "test"], registry=registry)
    for name, t in (drift.get("tests") or {}).items():
        stat.labels(model, name).set(t["statistic"])
        if t["p_value"] is not None:
            pval.labels(model, name).set(t["p_value"])
        flag.labels(model, name).set(int(t["flagged"]))
    Gauge("tunesmith_drift_detected", "1 when drift was declared", ["model"], registry=registry).labels(model).set(
        int(bool(drift.get("detected"))))
    acc = Gauge("tunesmith_live_accuracy", "Accuracy on labeled predictions in the window", ["model", "version"],
                registry=registry)
    f1 = Gauge("tunesmith_live_macro_f1", "Macro-F1 on labeled predictions in the window", ["model", "version"],
               registry=registry)
    burn = Gauge("tunesmith_error_budget_burn_rate", "Error rate over the SLO's error budget", ["model", "version"],
                 registry=registry)
    labeled = Gauge("tunesmith_live_labels", "Labeled predictions in the window", ["model", "version"],
                    registry=registry)
    quality = Gauge("tunesmith_live_quality", "A family's live-quality metric on predictions with feedback",
                    ["model", "version", "metric"], registry=registry)
    confusion = Gauge("tunesmith_live_confusion", "A classifier's labeled predictions in the window, by true and "
                      "predicted label", ["model", "version", "truth", "predicted"], registry=registry)
    for version, v in report["live"]["versions"].items():
        labeled.labels(model, str(version)).set(v["n"])
        for truth, row in (v.get("confusion") or {}).items():
            for predicted, count in row.items():
                confusion.labels(model, str(version), truth, predicted).set(count)
        for gauge, value in ((acc, v.get("accuracy")), (f1, v.get("macro_f1")), (burn, v.get("burn_rate"))):
            if value is not None:
                gauge.labels(model, str(version)).set(value)
        for metric in report["live"].get("metrics", {}) if report["live"].get("kind") == "quality" else ():
            if v.get(metric) is not None:
                quality.labels(model, str(version), metric).set(v[metric])
    review = report.get("review") or {}
    if review.get("rate") is not None:
        Gauge("tunesmith_human_review_rate", "Share of the window's served predictions routed to people",
              ["model"], registry=registry).labels(model).set(review["rate"])
    if review.get("pending") is not None:
        Gauge("tunesmith_review_backlog", "Review items nobody has labeled yet", ["model"],
              registry=registry).labels(model).set(review["pending"])
    Gauge("tunesmith_monitor_last_run_timestamp_seconds", "When the last monitor report was written", ["model"],
          registry=registry).labels(model).set(datetime.now(timezone.utc).timestamp())
    return registry


def write_monitor_report(report: dict, out_dir: Path) -> dict:
    """latest.json, report.html and metrics.prom under out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out_dir / "latest.json"), "html": str(out_dir / "report.html"),
             "prometheus": str(out_dir / "metrics.prom")}
    atomic_write_json(files["json"], json.loads(json.dumps(report, default=str)))
    atomic_write_text(files["html"], render_html(report))
    write_to_textfile(files["prometheus"], gauges(report))  # writes a temp file and renames it
    return files
