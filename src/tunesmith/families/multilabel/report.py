"""report.html sections for multi-label classification: tuned vs probe (and champion) with CIs, per-label table with
thresholds, and per-label calibration with the pooled reliability diagram."""

from __future__ import annotations

from tunesmith.evaluation import plots
from tunesmith.evaluation.report import _ci, _e, _img, _table, _value_html


def multilabel_sections(r) -> list[tuple[str, str]]:
    """(title, html) pairs for a `MultiLabelEvalReport`."""
    return [("Baseline vs tuned (test split)", _metrics(r)), ("Per label (tuned)", _per_label(r)),
            ("Calibration per label", _calibration(r))]


def _metrics(r) -> str:
    header = ["metric", "baseline (one-vs-rest probe)", "tuned", "uplift [CI]"]
    if r.champion is not None:
        header += ["champion", "vs champion [CI]"]
    rows = []
    for m, v in r.tuned.items():
        row = [m, r.baseline.get(m), v, _ci(r.uplift.get(m))]
        if r.champion is not None:
            row += [r.champion.get(m), _ci((r.vs_champion or {}).get(m))]
        rows.append(row)
    conf = f"{r.bootstrap.get('confidence', 0.95):.0%}"
    lead = (f"<p>Test rows: {r.rows}, labels: {len(r.labels)}. Every model is scored at its own per-label thresholds, "
            f"tuned on the eval split (never on test). CIs: {conf} paired bootstrap over "
            f"{_e(r.bootstrap.get('samples'))} resamples of test rows. Primary metric: <b>{_e(r.primary_metric)}</b>. "
            f"Champion: {_e(r.champion_status)}.</p>")
    probe = f"<div class='muted'>Baseline: {_value_html(r.baseline_probe)}</div>" if r.baseline_probe else ""
    return lead + _table(header, rows) + probe


def _per_label(r) -> str:
    rows = [[label, s["threshold"], s["precision"], s["recall"], s["f1"], s["support"], s["eval_support"],
             s["baseline_f1"]] for label, s in r.per_label.items()]
    note = f"<p class='muted'>thresholds.json: fitted on {_e(r.thresholds.get('fitted_on'))}, shipped with the model.</p>"
    return _table(["label", "threshold", "precision", "recall", "F1", "test support", "eval support", "baseline F1"],
                  rows) + note


def _calibration(r) -> str:
    c = r.calibration
    rows = [[label, ece] for label, ece in c["ece_per_label"].items()]
    img = plots.reliability_diagram(c["reliability"], None)
    lead = ("<p>ECE per label: |share of positives - mean P(label)| over equal-width bins of P(label), weighted by "
            "bin size. The diagram pools every (row, label) probability.</p>")
    return lead + _table(["label", "ECE"], rows) + _img(img, "reliability of P(label), pooled")
