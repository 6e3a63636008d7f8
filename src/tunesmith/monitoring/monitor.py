"""`tunesmith monitor`: a window of logged predictions against the training reference, plus live quality.

    report = monitor(cfg, window="500")   # -> dict; also <report_dir>/<name>/latest.json, report.html, metrics.prom

The window is the last N served predictions (shadow copies excluded) or those of the last duration. Drift is
judged against the reference of the version that served most of the window.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from tunesmith.config import Config, parse_window
from tunesmith.monitoring import drift
from tunesmith.monitoring.feedback import as_aware, labeled_predictions, read_feedback
from tunesmith.monitoring.live import live_accuracy, live_quality
from tunesmith.monitoring.predictions import db_engine, default_url, predictions


def db_url(cfg: Config) -> str:
    return cfg.serving.predictions.url or default_url()


def report_dir(cfg: Config, name: str) -> Path:
    return Path(cfg.monitoring.report_dir) / name


def window_rows(url: str, model: str, window: str) -> list[dict]:
    """Served (non-shadow) predictions of `model` in the window, oldest first, input/output decoded."""
    count, seconds = parse_window(window)
    p = predictions
    query = sa.select(p).where(p.c.model == model, p.c.role != "shadow")
    if seconds is not None:
        query = query.where(p.c.ts >= datetime.now(timezone.utc) - timedelta(seconds=seconds))
    query = query.order_by(p.c.id.desc())
    if count is not None:
        query = query.limit(count)
    engine = db_engine(url)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()
    rows.reverse()
    for row in rows:
        row["input"], row["output"] = json.loads(row["input"]), json.loads(row["output"])
        row["ts"] = as_aware(row["ts"])
    return rows


def _embedder(model_dir: Path, max_length: int):
    from tunesmith.evaluation.scoring import load_classifier
    from tunesmith.monitoring.reference import embed

    model, tokenizer = load_classifier(model_dir)
    return lambda texts: embed(model, tokenizer, texts, max_length=max_length)


def drift_section(cfg: Config, name: str, rows: list[dict], labeled: list[dict], store) -> dict:
    """Every drift test on the window, or a status saying why there are none."""
    from tunesmith.monitoring.reference import load_reference
    from tunesmith.registry import model_dir_for

    settings = cfg.monitoring.drift
    classified = [r for r in rows if isinstance(r["input"], str) and isinstance(r["output"], dict)
                  and "label" in r["output"]]
    if not rows:
        return {"status": "n/a", "note": "no logged predictions in the window"}
    if not classified:
        return {"status": "n/a", "note": "drift tests cover classification models; this window has none"}
    version = Counter(r["version"] for r in classified).most_common(1)[0][0]
    base = {"reference_version": version, "rows": len(classified)}
    if len(classified) < settings.min_rows:
        return {**base, "status": "n/a", "note": f"{len(classified)} rows < monitoring.drift.min_rows={settings.min_rows}"}
    reference = load_reference(store, name, version)
    if reference is None:
        return {**base, "status": "n/a", "note": f"version {version} has no drift reference (trained before "
                "tunesmith stored one); retrain or re-run it to get one"}
    texts = [r["input"] for r in classified]
    model_dir = model_dir_for(name, version, store=store)
    embed = _embedder(model_dir, reference.get("max_length", cfg.model.max_length)) if model_dir else None
    tests = drift.input_drift(texts, reference, settings, embed=embed, seed=cfg.seed)
    tests.update(drift.prediction_drift([r["output"]["label"] for r in classified],
                                        [float(r["output"].get("score") or 0) for r in classified], reference, settings))
    ids = {r["id"] for r in classified}
    mine = [r for r in labeled if r["id"] in ids and r.get("scores") and r["true_label"] in reference["labels"]]
    if mine:
        labels = reference["labels"]
        proba = np.array([[float(r["scores"].get(label, 0.0)) for label in labels] for r in mine])
        y = np.array([labels.index(r["true_label"]) for r in mine])
        calib = drift.calibration_drift(proba, y, reference, settings, cfg.evaluation.calibration.bins)
        if calib is not None:
            tests["calibration_ece"] = calib
    flagged = sorted(k for k, t in tests.items() if t["flagged"])
    detected = len(flagged) >= settings.min_flags
    return {**base, "status": "drift" if detected else "ok", "detected": detected, "flagged": flagged,
            "min_flags": settings.min_flags, "tests": tests,
            "window_start": classified[0]["ts"].isoformat(), "window_end": classified[-1]["ts"].isoformat(),
            "last_prediction_id": classified[-1]["id"], "labels": reference["labels"]}


def live_section(cfg: Config, labeled: list[dict], labels: list[str]) -> dict:
    """Live accuracy (classification: the label path) or the family's live quality, on the rows with feedback."""
    from tunesmith.contracts import LABEL_LIVE
    from tunesmith.families import get

    hooks = get(cfg.task).feedback
    if hooks is None or hooks.live == LABEL_LIVE:
        return {"kind": "accuracy", **live_accuracy(labeled, labels, cfg.monitoring.slo)}
    return {"kind": "quality", **live_quality(labeled, hooks, cfg.monitoring.slo, seed=cfg.seed)}


def monitor(cfg: Config, *, name: str | None = None, window: str | None = None, store=None,
            write: bool = True) -> dict:
    """Drift + live accuracy for `name` (default cfg.name) over the window; writes the report files."""
    from tunesmith.registry import open_store

    name = name or cfg.name
    window = window or cfg.monitoring.window
    parse_window(window)
    store = store or open_store(cfg.registry)
    url = db_url(cfg)
    rows = window_rows(url, name, window)
    ids = {r["id"] for r in rows}
    labeled = [r for r in labeled_predictions(url, name) if r["id"] in ids]
    drift_part = drift_section(cfg, name, rows, labeled, store)
    labels = drift_part.get("labels") or list(cfg.data.labels or [])
    report = {
        "model": name, "window": window, "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "predictions": len(rows), "labeled": len(labeled),
        "labels_stored": len(read_feedback(url, name)),
        "drift": drift_part, "live": live_section(cfg, labeled, labels),
    }
    if write:
        from tunesmith.monitoring.monitor_report import write_monitor_report

        report["files"] = write_monitor_report(report, report_dir(cfg, name))
    return report
