"""report.html sections for single-label classification: tuned vs linear probe (and champion) with CIs, per class,
confusion matrix, calibration (reliability diagram) and slices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunesmith.evaluation import plots
from tunesmith.evaluation.html import (
    bootstrap_note,
    comparison_table,
    esc,
    img,
    slices_html,
    table,
    value_html,
)
from tunesmith.evaluation.metrics import scalar_metrics

if TYPE_CHECKING:
    from tunesmith.families.classification.evaluate import EvalReport


def sections(r: EvalReport) -> list[tuple[str, str]]:
    """(title, html) pairs for a classification `EvalReport`."""
    return [("Base vs tuned (test split)", _results_section(r)), ("Calibration", _calibration_section(r)),
            ("Slices", _slices_section(r))]


def _results_section(r: EvalReport) -> str:
    out = [f"<p>Test rows: {esc(r.tuned.get('n'))}. {bootstrap_note(r)}. "
           f"Primary metric: <b>{esc(r.primary_metric)}</b>.</p>",
           comparison_table(r, "baseline (linear probe)", scalar=scalar_metrics), _champion_line(r)]
    per_class = [[label, s["precision"], s["recall"], s["f1"], s["support"],
                  r.baseline["per_class"][label]["f1"]] for label, s in r.tuned["per_class"].items()]
    out += ["<h3>Per class (tuned)</h3>",
            table(["label", "precision", "recall", "F1", "support", "baseline F1"], per_class),
            img(plots.confusion_matrix(r.tuned["confusion_matrix"], r.labels), "confusion matrix")]
    if r.baseline_probe:
        out.append(f"<div class='muted'>Baseline: {value_html(r.baseline_probe)}</div>")
    return "".join(out)


def _champion_line(r: EvalReport) -> str:
    """Whether and on which rows the champion was compared (it is never scored on rows it trained on)."""
    if not r.has_champion:
        return "<p class='muted'>Champion: none yet.</p>"
    if r.champion is None:
        return f"<p class='fail'>Champion {esc(r.champion_status)}; its gate rules fail.</p>"
    left_out = f", {esc(r.vs_champion_excluded)} rows it trained on left out" if r.vs_champion_excluded else ""
    return f"<p>Champion compared on {esc(r.vs_champion_rows)} test rows{left_out}.</p>"


def _calibration_section(r: EvalReport) -> str:
    c = r.calibration
    rows = [["temperature (fitted on eval)", c["temperature"]], ["ECE raw", c["ece"]],
            ["ECE after temperature", c["ece_calibrated"]], ["NLL raw", c["nll"]],
            ["NLL after temperature", c["nll_calibrated"]], ["bins", c["bins"]]]
    diagram = plots.reliability_diagram(c["reliability"], c["reliability_calibrated"], c["temperature"])
    return table(["", "value"], rows) + img(diagram, "reliability diagram")


def _slices_section(r: EvalReport) -> str:
    return slices_html(r.slices, r.bootstrap.get("confidence", 0.95))
