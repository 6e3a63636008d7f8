"""Live accuracy: served predictions scored against the true labels that came back, per model version and time.

    live = live_accuracy(labeled_predictions(url, "sentiment"), labels, cfg.monitoring.slo)

Error budget: the SLO says a share `slo.accuracy` of labeled predictions must be right, so the budget is
1 - slo.accuracy; the burn rate is the observed error rate over the budget (1 = spending it exactly as fast as
allowed, 2 = twice as fast; the usual multi-window alerts page at 14.4 over 1h and 6 over 6h).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

import numpy as np

from tunesmith.config import parse_window
from tunesmith.evaluation.metrics import confusion_counts, confusion_scores


def scores(true: list[str], predicted: list[str], labels: list[str]) -> dict:
    """accuracy and macro-F1 over the labels that occur (in truth or prediction)."""
    index = {label: i for i, label in enumerate(labels)}
    for value in (*true, *predicted):
        if value not in index:
            index[value] = len(index)
    y = np.array([index[v] for v in true])
    p = np.array([index[v] for v in predicted])
    if not len(y):
        return {"n": 0, "accuracy": None, "macro_f1": None}
    s = confusion_scores(confusion_counts(y, p, len(index)))  # macro over classes seen in truth or prediction
    return {"n": len(true), "accuracy": s["accuracy"], "macro_f1": s["macro_f1"]}


def burn_rate(accuracy: float | None, slo_accuracy: float) -> float | None:
    return None if accuracy is None else (1 - accuracy) / (1 - slo_accuracy)


def live_accuracy(rows: list[dict], labels: list[str], slo) -> dict:
    """Overall and per-version scores, a per-bucket series per version, burn rate and SLO verdicts."""
    _, bucket_s = parse_window(slo.bucket)
    by_version: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        if row.get("predicted") is not None:
            by_version[int(row["version"])].append(row)
    versions = {}
    for version, vrows in sorted(by_version.items()):
        overall = scores([r["true_label"] for r in vrows], [r["predicted"] for r in vrows], labels)
        series = defaultdict(list)
        for r in vrows:
            series[int(r["ts"].timestamp() // bucket_s * bucket_s)].append(r)
        points = []
        for start, brows in sorted(series.items()):
            s = scores([r["true_label"] for r in brows], [r["predicted"] for r in brows], labels)
            points.append({"start": datetime.fromtimestamp(start, tz=timezone.utc).isoformat(timespec="seconds"),
                           **s, "burn_rate": burn_rate(s["accuracy"], slo.accuracy)})
        roles = sorted({r["role"] for r in vrows})
        versions[version] = {**overall, "roles": roles, "burn_rate": burn_rate(overall["accuracy"], slo.accuracy),
                             "series": points, **_verdict(overall, slo)}
    return {"slo": {"accuracy": slo.accuracy, "macro_f1": slo.macro_f1, "bucket": slo.bucket,
                    "min_labels": slo.min_labels}, "versions": versions}


def _verdict(s: dict, slo) -> dict:
    if s["n"] < slo.min_labels:
        return {"status": "n/a", "note": f"{s['n']} labels < monitoring.slo.min_labels={slo.min_labels}"}
    breaches = []
    if s["accuracy"] < slo.accuracy:
        breaches.append(f"accuracy {s['accuracy']:.3f} < {slo.accuracy:g}")
    if slo.macro_f1 is not None and s["macro_f1"] < slo.macro_f1:
        breaches.append(f"macro_f1 {s['macro_f1']:.3f} < {slo.macro_f1:g}")
    return {"status": "breach" if breaches else "ok", "note": "; ".join(breaches)}
