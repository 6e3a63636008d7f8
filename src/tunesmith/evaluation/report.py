"""The run report: one self-contained `report.html` (plots inline, no external CSS/JS) and `metrics.json`.

    write_report(run_dir, config=cfg, data_report=bundle.report.to_dict(), train_result=result.to_dict(),
                 eval_report=report, decision=decision, lineage=lineage)

Every piece of user text (labels, slice values, paths, config strings) goes through html.escape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tunesmith.contracts import EvalReport
from tunesmith.evaluation import plots
from tunesmith.evaluation.gates import GateDecision
from tunesmith.evaluation.html import esc, img, table, value_html
from tunesmith.io import atomic_write_json, atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .6rem;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{background:#e6f4ea;color:#137333;font-weight:600}.fail{background:#fce8e6;color:#a50e0e;font-weight:600}
.banner{display:inline-block;padding:.3rem .8rem;border-radius:4px;margin:.5rem 0}.muted{color:#777}
img{max-width:100%}pre{background:#f7f7f7;padding:.6rem;overflow:auto;font-size:.8rem}
"""


_DATA_COUNTS = ("rows_read", "rows_used", "quarantined", "dropped_by_max_rows", "fingerprint", "quarantine_path")


def _data_section(report: dict) -> str:
    """Counts, split sizes, quarantine reasons and the label x split distribution; other keys as tables."""
    if not report:
        return "<p class='muted'>no data report</p>"
    out = []
    counts = [[k, report[k]] for k in _DATA_COUNTS if k in report]
    counts += [[f"{split} rows", n] for split, n in (report.get("split_sizes") or {}).items()]
    if counts:
        out.append(table(["", "value"], counts))
    reasons = report.get("quarantined_by_reason") or {}
    if reasons:
        out += ["<h3>Quarantine reasons</h3>", table(["reason", "rows"], [[r, n] for r, n in reasons.items()])]
    dist = report.get("label_distribution") or {}
    if dist and all(isinstance(v, dict) for v in dist.values()):
        splits = list(dist)
        labels = list(dict.fromkeys(label for split in splits for label in dist[split]))
        rows = [[label, *(dist[s].get(label, 0) for s in splits)] for label in labels]
        out += ["<h3>Label distribution</h3>", table(["label", *splits], rows)]
    excluded = report.get("excluded_by_config") or {}
    if excluded:
        out += ["<h3>Excluded by data.drop_labels</h3>", table(["label", "rows"], [[k, n] for k, n in excluded.items()])]
    lengths = report.get("text_length") or {}
    if lengths and all(isinstance(v, dict) for v in lengths.values()):
        rows = [[split, unit, *(stats.get(k) for k in ("mean", "p50", "p95", "max"))]
                for split, units in lengths.items() for unit, stats in units.items()]
        out += ["<h3>Text length</h3>", table(["split", "unit", "mean", "p50", "p95", "max"], rows)]
    sources = report.get("sources") or []
    if sources and all(isinstance(x, dict) for x in sources):
        keys = list(dict.fromkeys(k for src in sources for k in src))
        out += ["<h3>Sources</h3>", table(keys, [[src.get(k) for k in keys] for src in sources])]
    if report.get("warnings"):
        out.append("<ul>" + "".join(f"<li>{esc(w)}</li>" for w in report["warnings"]) + "</ul>")
    out.append(_checks_html(report.get("checks") or {}))
    shown = {*_DATA_COUNTS, "split_sizes", "quarantined_by_reason", "label_distribution", "warnings",
             "excluded_by_config", "text_length", "sources", "checks"}
    rest = {k: v for k, v in report.items() if k not in shown}
    if rest:
        out += ["<h3>Details</h3>", value_html(rest)]
    return "".join(out)


def _checks_html(checks: dict) -> str:
    """The data gates: policy, status and findings per check; masked PII examples; top label issues."""
    if not checks:
        return ""
    from tunesmith.data.checks import summarize

    rows = [[name, f.get("policy", "on" if f.get("enabled") else "-"), f.get("status"), summarize(name, f)]
            for name, f in checks.items()]
    out = ["<h3>Data checks</h3>", table(["check", "policy", "status", "findings"], rows)]
    pii = checks.get("pii") or {}
    if pii.get("note"):
        out.append(f"<p><b>{esc(pii['note'])}</b></p>")
    examples = [[t, n.get("rows"), n.get("findings"), ", ".join(f"{e['masked']} ({e['source']})" for e in n.get("examples", []))]
                for t, n in (pii.get("by_type") or {}).items() if n.get("rows")]
    if examples:
        out += ["<h4>PII by type (masked examples)</h4>", table(["type", "rows", "findings", "examples"], examples)]
    top = (checks.get("label_issues") or {}).get("top") or []
    if top:
        out += ["<h4>Likely label issues (candidates for review)</h4>",
                table(["source", "split", "given", "suggested", "p(given)", "text"],
                       [[t["source"], t["split"], t["given"], t["suggested"], t["given_label_probability"], t["text"]]
                        for t in top])]
    details = {k: v for k, v in checks.items() if k in ("duplicates", "conflicts", "leakage")}
    if details:
        out += ["<details><summary>duplicate and leakage details</summary>", value_html(details), "</details>"]
    return "".join(out)


def _gates_section(d: GateDecision) -> str:
    rows = []
    for rule in d.rules:
        verdict = "PASS" if rule.passed else "FAIL"
        rows.append([f"<td class='{verdict.lower()}'>{verdict}</td>", rule.rule, rule.value, rule.note])
    found = table(["", "rule", "measured", "note"], rows, raw_cols=frozenset({0})) if rows else ""
    return found or "<p class='muted'>no gate rules configured (the decision passes)</p>"


def _training_section(train_result: dict | None, metric: str) -> str:
    if not train_result:
        return "<p class='muted'>no training result (evaluation of an existing model)</p>"
    keys = ("method", "precision", "trainable_params", "total_params", "train_runtime_s", "train_examples_per_s",
            "best_metric", "best_checkpoint")
    rows = [[k, train_result[k]] for k in keys if k in train_result]
    curves = plots.learning_curves(train_result.get("log_history") or [], metric)
    return table(["", "value"], rows) + img(curves, "learning curves")


def _config_dict(config: Any) -> dict:
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    return dict(config or {})


def render_html(*, config: Any, data_report: dict, train_result: dict | None, eval_report: EvalReport | Any,
                decision: GateDecision, lineage: dict, extra_sections: Sequence[tuple[str, str]] = ()) -> str:
    cfg = _config_dict(config)
    name = cfg.get("name", "model")
    verdict = "pass" if decision.passed else "fail"
    summary = (f"gates {'PASSED' if decision.passed else 'FAILED'}: "
               f"{sum(r.passed for r in decision.rules)} of {len(decision.rules)} rules")
    notes = "".join(f"<li>{esc(n)}</li>" for n in eval_report.notes)
    results = eval_report.html_sections()  # the family's own: base vs tuned, per class / type, samples, ...
    safety = getattr(eval_report, "safety", None)  # evaluation.safety's block (ReportBase.safety)
    if safety:
        from tunesmith.evaluation.safety.report import safety_html

        results = [*results, ("Safety suites (base vs tuned)", safety_html(safety))]
    curve_metric = eval_report.curve_metric
    sections = [
        ("Data", _data_section(data_report or {})),
        ("Training", _training_section(train_result, curve_metric)),
        *results,
        *extra_sections,  # (title, html) from a method's own comparison (distillation)
        ("Gate decision", _gates_section(decision)),
        ("Lineage", value_html(lineage or {})),
        ("Config (resolved)", f"<pre>{esc(yaml.safe_dump(cfg, sort_keys=False))}</pre>"),
    ]
    body = "".join(f"<h2>{esc(title)}</h2>{html}" for title, html in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>tunesmith report: {esc(name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(name)}</h1><div class='banner {verdict}'>{esc(summary)}</div>"
        f"{'<ul>' + notes + '</ul>' if notes else ''}{body}</body></html>\n"
    )


def metrics_document(eval_report: EvalReport, decision: GateDecision, lineage: dict | None = None) -> dict:
    """The metrics.json content: the family's report (tuned, baseline, champion and its status, uplift, ...), the
    gates, the flat metrics they read and the lineage."""
    return {**eval_report.metrics_document(), "gates": decision.to_dict(), "flat": eval_report.flat_metrics(),
            "lineage": lineage or {}}


def write_report(run_dir: str | Path, *, config: Any, data_report: dict, train_result: dict | None,
                 eval_report: EvalReport, decision: GateDecision, lineage: dict,
                 extra: dict | None = None, extra_sections: Sequence[tuple[str, str]] = ()) -> Path:
    """Write `run_dir/report.html` and `run_dir/metrics.json` (both atomically); returns the HTML path.

    `extra` adds top-level blocks to metrics.json (e.g. `distillation`), `extra_sections` (title, html) sections."""
    run_dir = Path(run_dir)
    atomic_write_json(run_dir / "metrics.json", {**metrics_document(eval_report, decision, lineage), **(extra or {})})
    page = render_html(config=config, data_report=data_report, train_result=train_result,
                       eval_report=eval_report, decision=decision, lineage=lineage, extra_sections=extra_sections)
    return atomic_write_text(run_dir / "report.html", page)
