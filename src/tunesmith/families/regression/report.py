"""report.html sections for regression: tuned vs ridge probe (and champion) with CIs, and the largest errors."""

from __future__ import annotations

from tunesmith.evaluation.report import _ci, _e, _table, _value_html


def regression_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `RegressionEvalReport`."""
    return [("Baseline vs tuned (test split)", _metrics(r)), ("Largest errors (tuned)", _worst(r))]


def _metrics(r) -> str:
    header = ["metric", "baseline (ridge probe)", "tuned", "uplift [CI]"]
    if r.champion is not None:
        header += ["champion", "vs champion [CI]"]
    rows = []
    for m, v in r.tuned.items():
        row = [m, r.baseline.get(m), v, _ci(r.uplift.get(m))]
        if r.champion is not None:
            row += [r.champion.get(m), _ci((r.vs_champion or {}).get(m))]
        rows.append(row)
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    lead = (f"<p>Test rows: {r.rows}. CIs: {conf} paired bootstrap over {_e(r.bootstrap.get('samples'))} resamples. "
            f"For mae / rmse / mse a negative uplift is an improvement. Primary metric: <b>{_e(r.primary_metric)}"
            f"</b>. Champion: {_e(r.champion_status)}.</p>")
    probe = f"<div class='muted'>Baseline: {_value_html(r.baseline_probe)}</div>" if r.baseline_probe else ""
    return lead + _table(header, rows) + probe


def _worst(r) -> str:
    rows = [[w["source"], w["text"], w["target"], w["tuned"], w["baseline"]] for w in r.worst]
    return _table(["row", "text", "target", "tuned", "baseline"], rows)
