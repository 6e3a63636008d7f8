"""report.html sections of the image classifier: tuned vs the frozen-feature probe with CIs, per class, confusion
matrix, calibration, slices, and the worst misclassified test images as thumbnails."""

from __future__ import annotations

import base64
import io

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

THUMB = 96  # pixels, the long side of a thumbnail


def sections(r) -> list[tuple[str, str]]:
    return [("Base vs tuned (test images)", _results(r)), ("Worst test images", _worst(r)),
            ("Calibration", _calibration(r)), ("Slices", slices_html(r.slices, r.bootstrap.get("confidence", 0.95)))]


def _results(r) -> str:
    per_class = [[label, s["precision"], s["recall"], s["f1"], s["support"], r.baseline["per_class"][label]["f1"]]
                 for label, s in r.tuned["per_class"].items()]
    champion = (f"<p>Champion: {esc(r.champion_status)}.</p>" if r.has_champion else
                "<p class='muted'>Champion: none yet.</p>")
    return "".join([f"<p>Test images: {esc(r.tuned.get('n'))}. {bootstrap_note(r)}. Primary metric: "
                    f"<b>{esc(r.primary_metric)}</b>.</p>",
                    comparison_table(r, "baseline (linear probe on frozen features)", scalar=scalar_metrics), champion,
                    "<h3>Per class (tuned)</h3>",
                    table(["label", "precision", "recall", "F1", "support", "baseline F1"], per_class),
                    img(plots.confusion_matrix(r.tuned["confusion_matrix"], r.labels), "confusion matrix"),
                    f"<div class='muted'>Baseline: {value_html(r.baseline_probe)}</div>"])


def _worst(r) -> str:
    if not r.worst:
        return "<p>No test image was misclassified.</p>"
    cells = [f"<figure style='display:inline-block;margin:4px'>{_thumb(w['image'])}<figcaption>true "
             f"{esc(w['label'])}, predicted {esc(w['predicted'])} (p_true {w['p_true']:.2f})</figcaption></figure>"
             for w in r.worst]
    return "<p>Misclassified test images, least confident in the true class first.</p>" + "".join(cells)


def _thumb(path: str) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = THUMB / max(im.size)  # shrink large images, enlarge tiny ones (pixels kept sharp)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                           Image.NEAREST if scale > 1 else Image.BILINEAR)
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except OSError:
        return f"<span class='muted'>{esc(path)} (no longer readable)</span>"
    return f"<img alt='{esc(path)}' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def _calibration(r) -> str:
    c = r.calibration
    rows = [["temperature (fitted on eval)", c["temperature"]], ["ECE raw", c["ece"]],
            ["ECE after temperature", c["ece_calibrated"]], ["bins", c["bins"]]]
    return table(["", "value"], rows) + img(plots.reliability_diagram(c["reliability"], c["reliability_calibrated"],
                                                                       c["temperature"]), "reliability diagram")
