"""The run report: one self-contained `report.html` (plots inline, no external CSS/JS) and `metrics.json`.

    write_report(run_dir, config=cfg, data_report=bundle.report.to_dict(), train_result=result.to_dict(),
                 eval_report=report, decision=decision, lineage=lineage)

Every piece of user text (labels, slice values, paths, config strings) goes through html.escape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import yaml

from tunesmith.evaluation import plots
from tunesmith.evaluation.evaluate import EvalReport
from tunesmith.evaluation.gates import GateDecision
from tunesmith.evaluation.metrics import scalar_metrics
from tunesmith.io import atomic_write_json, atomic_write_text, json_safe

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.25rem .6rem;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{background:#e6f4ea;color:#137333;font-weight:600}.fail{background:#fce8e6;color:#a50e0e;font-weight:600}
.banner{display:inline-block;padding:.3rem .8rem;border-radius:4px;margin:.5rem 0}.muted{color:#777}
img{max-width:100%}pre{background:#f7f7f7;padding:.6rem;overflow:auto;font-size:.8rem}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]], raw_cols: frozenset[int] = frozenset()) -> str:
    """An HTML table; cells are escaped unless their column is in raw_cols (already-built HTML)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if i in raw_cols:
                cells.append(v)
            else:
                cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
                cells.append(f"<td{cls}>{_e(_fmt(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(uri: str | None, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="{uri}">' if uri else f'<p class="muted">no data for {_e(alt)}</p>'


def _value_html(value: Any, depth: int = 0) -> str:
    """Nested dicts as nested key/value tables; lists of scalars inline; anything deeper as escaped JSON."""
    if isinstance(value, dict) and value and depth < 3:
        rows = [f"<tr><th>{_e(k)}</th><td>{_value_html(v, depth + 1)}</td></tr>" for k, v in value.items()]
        return f"<table>{''.join(rows)}</table>"
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return _e(", ".join(_fmt(v) for v in value)) or '<span class="muted">none</span>'
    if isinstance(value, dict | list):
        text = json.dumps(json_safe(value), indent=1)
        return f"<pre>{_e(text[:4000])}{'…' if len(text) > 4000 else ''}</pre>"
    return _e(_fmt(value))


_DATA_COUNTS = ("rows_read", "rows_used", "quarantined", "dropped_by_max_rows", "fingerprint", "quarantine_path")


def _data_section(report: dict) -> str:
    """Counts, split sizes, quarantine reasons and the label x split distribution; other keys as tables."""
    if not report:
        return "<p class='muted'>no data report</p>"
    out = []
    counts = [[k, report[k]] for k in _DATA_COUNTS if k in report]
    counts += [[f"{split} rows", n] for split, n in (report.get("split_sizes") or {}).items()]
    if counts:
        out.append(_table(["", "value"], counts))
    reasons = report.get("quarantined_by_reason") or {}
    if reasons:
        out += ["<h3>Quarantine reasons</h3>", _table(["reason", "rows"], [[r, n] for r, n in reasons.items()])]
    dist = report.get("label_distribution") or {}
    if dist and all(isinstance(v, dict) for v in dist.values()):
        splits = list(dist)
        labels = list(dict.fromkeys(label for split in splits for label in dist[split]))
        rows = [[label, *(dist[s].get(label, 0) for s in splits)] for label in labels]
        out += ["<h3>Label distribution</h3>", _table(["label", *splits], rows)]
    excluded = report.get("excluded_by_config") or {}
    if excluded:
        out += ["<h3>Excluded by data.drop_labels</h3>", _table(["label", "rows"], [[k, n] for k, n in excluded.items()])]
    lengths = report.get("text_length") or {}
    if lengths and all(isinstance(v, dict) for v in lengths.values()):
        rows = [[split, unit, *(stats.get(k) for k in ("mean", "p50", "p95", "max"))]
                for split, units in lengths.items() for unit, stats in units.items()]
        out += ["<h3>Text length</h3>", _table(["split", "unit", "mean", "p50", "p95", "max"], rows)]
    sources = report.get("sources") or []
    if sources and all(isinstance(x, dict) for x in sources):
        keys = list(dict.fromkeys(k for src in sources for k in src))
        out += ["<h3>Sources</h3>", _table(keys, [[src.get(k) for k in keys] for src in sources])]
    if report.get("warnings"):
        out.append("<ul>" + "".join(f"<li>{_e(w)}</li>" for w in report["warnings"]) + "</ul>")
    out.append(_checks_html(report.get("checks") or {}))
    shown = {*_DATA_COUNTS, "split_sizes", "quarantined_by_reason", "label_distribution", "warnings",
             "excluded_by_config", "text_length", "sources", "checks"}
    rest = {k: v for k, v in report.items() if k not in shown}
    if rest:
        out += ["<h3>Details</h3>", _value_html(rest)]
    return "".join(out)


def _checks_html(checks: dict) -> str:
    """The data gates: policy, status and findings per check; masked PII examples; top label issues."""
    if not checks:
        return ""
    from tunesmith.data.checks import summarize

    rows = [[name, f.get("policy", "on" if f.get("enabled") else "-"), f.get("status"), summarize(name, f)]
            for name, f in checks.items()]
    out = ["<h3>Data checks</h3>", _table(["check", "policy", "status", "findings"], rows)]
    pii = checks.get("pii") or {}
    if pii.get("note"):
        out.append(f"<p><b>{_e(pii['note'])}</b></p>")
    examples = [[t, n.get("rows"), n.get("findings"), ", ".join(f"{e['masked']} ({e['source']})" for e in n.get("examples", []))]
                for t, n in (pii.get("by_type") or {}).items() if n.get("rows")]
    if examples:
        out += ["<h4>PII by type (masked examples)</h4>", _table(["type", "rows", "findings", "examples"], examples)]
    top = (checks.get("label_issues") or {}).get("top") or []
    if top:
        out += ["<h4>Likely label issues (candidates for review)</h4>",
                _table(["source", "split", "given", "suggested", "p(given)", "text"],
                       [[t["source"], t["split"], t["given"], t["suggested"], t["given_label_probability"], t["text"]]
                        for t in top])]
    details = {k: v for k, v in checks.items() if k in ("duplicates", "conflicts", "leakage")}
    if details:
        out += ["<details><summary>duplicate and leakage details</summary>", _value_html(details), "</details>"]
    return "".join(out)


def _ci(stats: dict | None) -> str:
    if not stats:
        return "-"
    text = f"{stats['delta']:+.4f}"
    if "ci_low" in stats and stats["ci_low"] is not None:
        text += f" [{stats['ci_low']:+.4f}, {stats['ci_high']:+.4f}] p={stats['p_value']:.3f}"
    return text


def _results_section(r: EvalReport) -> str:
    tuned, base = scalar_metrics(r.tuned), scalar_metrics(r.baseline)
    champ = scalar_metrics(r.champion) if r.champion else {}
    header = ["metric", "baseline (linear probe)", "tuned", "uplift [CI]"]
    if r.champion is not None:
        header += ["champion", "vs champion [CI]"]
    rows = []
    for m, v in tuned.items():
        row = [m, base.get(m), v, _ci(r.uplift.get(m))]
        if r.champion is not None:
            row += [champ.get(m), _ci((r.vs_champion or {}).get(m))]
        rows.append(row)
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    out = [f"<p>Test rows: {_e(r.tuned.get('n'))}. CIs: {conf} paired bootstrap over "
           f"{_e(r.bootstrap.get('samples'))} resamples. Primary metric: <b>{_e(r.primary_metric)}</b>.</p>",
           _table(header, rows), _champion_line(r)]
    per_class = [[label, s["precision"], s["recall"], s["f1"], s["support"],
                  r.baseline["per_class"][label]["f1"]] for label, s in r.tuned["per_class"].items()]
    out += ["<h3>Per class (tuned)</h3>",
            _table(["label", "precision", "recall", "F1", "support", "baseline F1"], per_class),
            _img(plots.confusion_matrix(r.tuned["confusion_matrix"], r.labels), "confusion matrix")]
    if r.baseline_probe:
        out.append(f"<div class='muted'>Baseline: {_value_html(r.baseline_probe)}</div>")
    return "".join(out)


def _champion_line(r: EvalReport) -> str:
    """Whether and on which rows the champion was compared (it is never scored on rows it trained on)."""
    if not r.has_champion:
        return "<p class='muted'>Champion: none yet.</p>"
    if r.champion is None:
        return f"<p class='fail'>Champion {_e(r.champion_status)}; its gate rules fail.</p>"
    left_out = f", {_e(r.vs_champion_excluded)} rows it trained on left out" if r.vs_champion_excluded else ""
    return f"<p>Champion compared on {_e(r.vs_champion_rows)} test rows{left_out}.</p>"


def _calibration_section(r: EvalReport) -> str:
    c = r.calibration
    rows = [["temperature (fitted on eval)", c["temperature"]], ["ECE raw", c["ece"]],
            ["ECE after temperature", c["ece_calibrated"]], ["NLL raw", c["nll"]],
            ["NLL after temperature", c["nll_calibrated"]], ["bins", c["bins"]]]
    img = plots.reliability_diagram(c["reliability"], c["reliability_calibrated"], c["temperature"])
    return _table(["", "value"], rows) + _img(img, "reliability diagram")


def _slices_section(r: EvalReport) -> str:
    models = ["tuned", "baseline"] + (["champion"] if r.champion is not None else [])
    out = []
    for column, res in r.slices.items():
        out.append(f"<h3>{_e(column)}</h3>")
        if "error" in res:
            out.append(f"<p class='fail'>{_e(res['error'])}</p>")
            continue
        header = ["value", "n"] + [f"{m} {k}" for m in models for k in ("accuracy", "macro_f1")]
        rows = []
        for v in res["values"]:
            label = v["value"] + (f" ({res['ranges'][v['value']]})" if v["value"] in res.get("ranges", {}) else "")
            rows.append([label, v["n"]] + [v.get(m, {}).get(k) for m in models for k in ("accuracy", "macro_f1")])
        out.append(_table(header, rows))
        if res["skipped"]:
            skipped = ", ".join(f"{s['value']} (n={s['n']})" for s in res["skipped"])
            out.append(f"<p class='muted'>skipped (n &lt; {_e(res.get('min_n'))}): {_e(skipped)}</p>")
    return "".join(out) or "<p class='muted'>no slices configured</p>"


def _gates_section(d: GateDecision) -> str:
    rows = []
    for rule in d.rules:
        verdict = "PASS" if rule.passed else "FAIL"
        rows.append([f"<td class='{verdict.lower()}'>{verdict}</td>", rule.rule, rule.value, rule.note])
    table = _table(["", "rule", "measured", "note"], rows, raw_cols=frozenset({0})) if rows else ""
    return table or "<p class='muted'>no gate rules configured (the decision passes)</p>"


def _training_section(train_result: dict | None, metric: str) -> str:
    if not train_result:
        return "<p class='muted'>no training result (evaluation of an existing model)</p>"
    keys = ("method", "precision", "trainable_params", "total_params", "train_runtime_s", "train_examples_per_s",
            "best_metric", "best_checkpoint")
    rows = [[k, train_result[k]] for k in keys if k in train_result]
    curves = plots.learning_curves(train_result.get("log_history") or [], metric)
    return _table(["", "value"], rows) + _img(curves, "learning curves")


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
    notes = "".join(f"<li>{_e(n)}</li>" for n in eval_report.notes)
    if hasattr(eval_report, "html_sections"):  # embedding (and other families that render their own)
        results = eval_report.html_sections()
        curve_metric = "loss"
    elif hasattr(eval_report, "samples"):  # causal-lm: generation metrics and answers side by side
        from tunesmith.families.causal_lm.report import causal_sections

        results = causal_sections(eval_report)
        curve_metric = "loss"
    else:
        results = [("Base vs tuned (test split)", _results_section(eval_report)),
                   ("Calibration", _calibration_section(eval_report)),
                   ("Slices", _slices_section(eval_report))]
        curve_metric = eval_report.primary_metric
    sections = [
        ("Data", _data_section(data_report or {})),
        ("Training", _training_section(train_result, curve_metric)),
        *results,
        *extra_sections,  # (title, html) from a method's own comparison (distillation)
        ("Gate decision", _gates_section(decision)),
        ("Lineage", _value_html(lineage or {})),
        ("Config (resolved)", f"<pre>{_e(yaml.safe_dump(cfg, sort_keys=False))}</pre>"),
    ]
    body = "".join(f"<h2>{_e(title)}</h2>{html}" for title, html in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>tunesmith report: {_e(name)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(name)}</h1><div class='banner {verdict}'>{_e(summary)}</div>"
        f"{'<ul>' + notes + '</ul>' if notes else ''}{body}</body></html>\n"
    )


def metrics_document(eval_report: EvalReport, decision: GateDecision, lineage: dict | None = None) -> dict:
    """The metrics.json content: tuned, baseline, champion (or null) and its status, uplift, gates, calibration, slices."""
    r = eval_report.to_dict()
    if hasattr(eval_report, "html_sections"):  # embedding, regression: their own fields, as they are
        return {**r, "gates": decision.to_dict(), "flat": eval_report.flat_metrics(), "lineage": lineage or {}}
    if hasattr(eval_report, "samples"):  # causal-lm
        return {**r, "gates": decision.to_dict(), "flat": eval_report.flat_metrics(), "lineage": lineage or {}}
    return {
        "tuned": r["tuned"], "baseline": r["baseline"], "champion": r["champion"], "uplift": r["uplift"],
        "vs_champion": r["vs_champion"], "champion_status": r["champion_status"],
        "vs_champion_rows": r["vs_champion_rows"], "vs_champion_excluded": r["vs_champion_excluded"],
        "gates": decision.to_dict(), "calibration": r["calibration"],
        "slices": r["slices"], "flat": eval_report.flat_metrics(), "baseline_probe": r["baseline_probe"],
        "bootstrap": r["bootstrap"], "notes": r["notes"], "lineage": lineage or {},
    }


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
