"""Live quality: served predictions scored against the feedback that came back, per model version and time.

    live = live_accuracy(labeled_predictions(url, "sentiment"), labels, cfg.monitoring.slo)   # classification
    live = live_quality(labeled_predictions(url, "scores"), family.feedback, cfg.monitoring.slo)  # other families

The other families' metrics come from their `FeedbackHooks.live` (MAE/RMSE/Spearman, micro-F1, MRR@10, thumbs-up
rate, ...), with a bootstrap CI over requests for the first one, a per-bucket series, and a verdict against
`monitoring.slo.targets`.

Error budget: the SLO says a share `slo.accuracy` of labeled predictions must be right, so the budget is
1 - slo.accuracy; the burn rate is the observed error rate over the budget (1 = spending it exactly as fast as
allowed, 2 = twice as fast; the usual multi-window alerts page at 14.4 over 1h and 6 over 6h).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from functools import partial

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
    counts = confusion_counts(y, p, len(index))
    s = confusion_scores(counts)  # macro over classes seen in truth or prediction
    names = list(index)
    confusion = {names[t]: {names[q]: int(counts[t][q]) for q in range(len(names)) if counts[t][q]}
                 for t in range(len(names)) if any(counts[t])}
    return {"n": len(true), "accuracy": s["accuracy"], "macro_f1": s["macro_f1"], "confusion": confusion}


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
            s.pop("confusion", None)  # per version, not per bucket
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


def live_quality(rows: list[dict], hooks, slo, *, samples: int = 200, seed: int = 0, model_dir_of=None,
                 served_rows: list[dict] = (), extra_of=None) -> dict:
    """Each version's family metrics on its rows with feedback, a bootstrap CI (resampling requests) for the first
    metric, a per-bucket series of it, and the verdict against `slo.targets` (metric -> bound; the family says which
    way is better). `extra_of(version, its served rows) -> {metric: value}` adds the metrics that need no feedback
    (every served answer's, scheduled checks'); they are judged whatever the number of labels. Returns
    {"metrics", "targets", "versions": {version: {...}}} or a status saying why none."""
    directions = dict(hooks.live_metrics)
    targets = {k: v for k, v in (slo.targets or {}).items()}
    base = {"metrics": directions, "targets": targets, "bucket": slo.bucket, "min_labels": slo.min_labels}
    if not callable(hooks.live):
        return {**base, "status": "n/a", "note": "live quality is not measured for this family yet", "versions": {}}
    unknown = sorted(set(targets) - set(directions))
    if unknown:
        raise ValueError(f"monitoring.slo.targets: {', '.join(unknown)} not measured for this family; it measures "
                         f"{', '.join(directions)}")
    primary = hooks.live_metrics[0][0]
    _, bucket_s = parse_window(slo.bucket)
    by_version: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_version[int(row["version"])].append(row)
    versions = {}
    for version, vrows in sorted(by_version.items()):
        if hooks.live_needs_model:  # the family scores with the version's own model (embeddings of documents)
            model_dir = model_dir_of(version) if model_dir_of is not None else None
            if model_dir is None:
                versions[version] = {"n": len(vrows), "roles": sorted({r["role"] for r in vrows}), "ci": None,
                                     "series": [], "status": "n/a", "note": f"version {version}'s model is not found"}
                continue
            measure = partial(hooks.live, model_dir=model_dir)
        else:
            measure = hooks.live
        metrics = _measure(measure, vrows)
        series = defaultdict(list)
        for r in vrows:
            series[int(r["ts"].timestamp() // bucket_s * bucket_s)].append(r)
        points = [{"start": datetime.fromtimestamp(start, tz=timezone.utc).isoformat(timespec="seconds"),
                   "n": len(brows), primary: _measure(measure, brows).get(primary)}
                  for start, brows in sorted(series.items())]
        versions[version] = {"n": len(vrows), "roles": sorted({r["role"] for r in vrows}), **metrics,
                             "ci": _bootstrap(measure, vrows, primary, samples, seed), "series": points}
    served = defaultdict(list)
    for row in served_rows if extra_of is not None else ():
        served[int(row["version"])].append(row)
    for version, srows in served.items():
        versions.setdefault(version, {"n": 0, "roles": sorted({r["role"] for r in srows}), "ci": None, "series": []})
    for version, entry in versions.items():
        if "status" in entry:  # its model is gone: nothing measured
            continue
        extra = dict(extra_of(version, served[version])) if version in served else {}
        if "checks" in extra:
            entry["checks"] = extra.pop("checks")
        extra = {k: v for k, v in extra.items() if k in directions}
        entry.update(extra)
        entry.update(_quality_verdict(entry["n"], entry, targets, directions, slo.min_labels, always=set(extra)))
    return {**base, "status": "ok", "primary": primary, "versions": dict(sorted(versions.items()))}


def _measure(measure, rows: list[dict]) -> dict:
    return measure([(r["answer"], r["true_value"], r["request_id"]) for r in rows])


def _bootstrap(measure, rows: list[dict], metric: str, samples: int, seed: int) -> dict | None:
    """95% percentile CI of `metric`, resampling whole requests (a reranked query's items stay together)."""
    groups = defaultdict(list)
    for r in rows:
        groups[r["request_id"]].append(r)
    keys = list(groups)
    if len(keys) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        picked = rng.integers(0, len(keys), len(keys))
        value = _measure(measure, [r for i in picked for r in groups[keys[i]]]).get(metric)
        if value is not None:
            values.append(value)
    if len(values) < samples // 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return {"low": float(low), "high": float(high), "samples": samples, "confidence": 0.95}


def _quality_verdict(n: int, metrics: dict, targets: dict, directions: dict, min_labels: int,
                     always: set[str] = frozenset()) -> dict:
    """Breached targets; a metric from feedback counts only with `min_labels` labels, one in `always` (measured on
    every served answer, or by a scheduled check) counts as it is."""
    judged = [m for m in targets if m in always or n >= min_labels]
    if n < min_labels and not any(metrics.get(m) is not None for m in judged):
        return {"status": "n/a", "note": f"{n} labels < monitoring.slo.min_labels={min_labels}"}
    if not targets:
        return {"status": "ok", "note": "no monitoring.slo.targets set"}
    breaches = []
    for metric, bound in targets.items():
        value = metrics.get(metric) if metric in judged else None
        if value is None:
            continue
        if (value < bound) if directions[metric] == "higher" else (value > bound):
            sign = "<" if directions[metric] == "higher" else ">"
            breaches.append(f"{metric} {value:.3f} {sign} {bound:g}")
    return {"status": "breach" if breaches else "ok", "note": "; ".join(breaches)}
