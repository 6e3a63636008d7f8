"""report.html sections for multi-label classification: tuned vs probe (and champion) with CIs, per-label table with
thresholds, and per-label calibration with the pooled reliability diagram."""

from __future__ import annotations

from tunesmith.evaluation import plots
from tunesmith.evaluation.html import comparison_table, esc, img, table, value_html


def multilabel_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `MultiLabelEvalReport`."""
    return [("Baseline vs tuned (test split)", _metrics(r)), ("Per label (tuned)", _per_label(r)),
            ("Calibration per label", _calibration(r))]


def _metrics(r) -> str:
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    lead = (f"<p>Test rows: {r.rows}, labels: {len(r.labels)}. Every model is scored at its own per-label thresholds, "
            f"tuned on the eval split (never on test). CIs: {conf} paired bootstrap over "
            f"{esc(r.bootstrap.get('samples'))} resamples of test rows. Primary metric: <b>{esc(r.primary_metric)}</b>. "
            f"Champion: {esc(r.champion_status)}.</p>")
    probe = f"<div class='muted'>Baseline: {value_html(r.baseline_probe)}</div>" if r.baseline_probe else ""
    return lead + comparison_table(r, "baseline (one-vs-rest probe)") + probe


def _per_label(r) -> str:
    rows = [[label, s["threshold"], s["precision"], s["recall"], s["f1"], s["support"], s["eval_support"],
             s["baseline_f1"]] for label, s in r.per_label.items()]
    note = f"<p class='muted'>thresholds.json: fitted on {esc(r.thresholds.get('fitted_on'))}, shipped with the model.</p>"
    return table(["label", "threshold", "precision", "recall", "F1", "test support", "eval support", "baseline F1"],
                  rows) + note


def _calibration(r) -> str:
    c = r.calibration
    rows = [[label, ece] for label, ece in c["ece_per_label"].items()]
    diagram = plots.reliability_diagram(c["reliability"], None)
    lead = ("<p>ECE per label: |share of positives - mean P(label)| over equal-width bins of P(label), weighted by "
            "bin size. The diagram pools every (row, label) probability.</p>")
    return lead + table(["label", "ECE"], rows) + img(diagram, "reliability of P(label), pooled")
