"""report.html sections for regression: tuned vs ridge probe (and champion) with CIs, and the largest errors."""

from __future__ import annotations

from tunesmith.evaluation.html import comparison_table, esc, table, value_html


def regression_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `RegressionEvalReport`."""
    return [("Baseline vs tuned (test split)", _metrics(r)), ("Largest errors (tuned)", _worst(r))]


def _metrics(r) -> str:
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    lead = (f"<p>Test rows: {r.rows}. CIs: {conf} paired bootstrap over {esc(r.bootstrap.get('samples'))} resamples. "
            f"For mae / rmse / mse a negative uplift is an improvement. Primary metric: <b>{esc(r.primary_metric)}"
            f"</b>. Champion: {esc(r.champion_status)}.</p>")
    probe = f"<div class='muted'>Baseline: {value_html(r.baseline_probe)}</div>" if r.baseline_probe else ""
    return lead + comparison_table(r, "baseline (ridge probe)") + probe


def _worst(r) -> str:
    rows = [[w["source"], w["text"], w["target"], w["tuned"], w["baseline"]] for w in r.worst]
    return table(["row", "text", "target", "tuned", "baseline"], rows)
