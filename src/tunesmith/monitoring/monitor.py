"""`tunesmith monitor`: a window of logged predictions against the training reference, plus live quality.

    report = monitor(cfg, window="500")   # -> dict; also <report_dir>/<name>/latest.json, report.html, metrics.prom

The window is the last N served predictions (shadow copies excluded) or those of the last duration. Drift is
judged against the reference of the version that served most of the window.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from tunesmith.config import Config, parse_window
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


@dataclass(frozen=True)
class DriftContext:
    """What a family's drift tests may need beyond the window and the reference."""

    cfg: Config
    name: str
    store: object
    version: int
    labeled: list[dict]


def drift_section(cfg: Config, name: str, rows: list[dict], labeled: list[dict], store) -> dict:
    """Every drift test of the model's family on the window, or a status saying why there are none."""
    from tunesmith.families import get
    from tunesmith.monitoring.reference import load_reference

    settings = cfg.monitoring.drift
    hooks = get(cfg.task).drift
    if not rows:
        return {"status": "n/a", "note": "no logged predictions in the window"}
    if hooks is None:
        return {"status": "n/a", "note": f"drift tests do not cover {cfg.task} models yet"}
    mine = [r for r in rows if hooks.accepts(r)]
    if not mine:
        return {"status": "n/a", "note": f"no {cfg.task} answers in this window"}
    version = Counter(r["version"] for r in mine).most_common(1)[0][0]
    base = {"reference_version": version, "rows": len(mine)}
    if len(mine) < settings.min_rows:
        return {**base, "status": "n/a", "note": f"{len(mine)} rows < monitoring.drift.min_rows={settings.min_rows}"}
    reference = load_reference(store, name, version)
    if reference is None:
        return {**base, "status": "n/a", "note": f"version {version} has no drift reference (trained before "
                "tunesmith stored one); retrain or re-run it to get one"}
    ids = {r["id"] for r in mine}
    context = DriftContext(cfg, name, store, version, [r for r in labeled if r["id"] in ids])
    tests = hooks.window(mine, reference, settings, context)
    flagged = sorted(k for k, t in tests.items() if t["flagged"])
    detected = len(flagged) >= settings.min_flags
    return {**base, "status": "drift" if detected else "ok", "detected": detected, "flagged": flagged,
            "min_flags": settings.min_flags, "tests": tests,
            "window_start": mine[0]["ts"].isoformat(), "window_end": mine[-1]["ts"].isoformat(),
            "last_prediction_id": mine[-1]["id"], "labels": reference.get("labels") or []}


def live_section(cfg: Config, labeled: list[dict], labels: list[str], *, name: str, store,
                 rows: list[dict] = ()) -> dict:
    """Live accuracy (classification: the label path) or the family's live quality, on the rows with feedback, plus
    the metrics that need none (on every served answer in the window, and the scheduled checks)."""
    from tunesmith.contracts import LABEL_LIVE
    from tunesmith.families import get
    from tunesmith.registry import model_dir_for

    hooks = get(cfg.task).feedback
    if hooks is None or hooks.live == LABEL_LIVE:
        return {"kind": "accuracy", **live_accuracy(labeled, labels, cfg.monitoring.slo)}
    model_dir_of = lambda version: model_dir_for(name, version, store=store)  # noqa: E731
    extra_of = None
    if hooks.served is not None or hooks.scheduled is not None:
        def extra_of(version: int, served_rows: list[dict]) -> dict:
            out = dict(hooks.served(served_rows, cfg) if hooks.served is not None else {})
            if hooks.scheduled is not None:
                out.update(scheduled_checks(cfg, name, version, hooks.scheduled, model_dir_of))
            return out
    return {"kind": "quality", **live_quality(labeled, hooks, cfg.monitoring.slo, seed=cfg.seed,
                                              model_dir_of=model_dir_of, served_rows=rows, extra_of=extra_of)}


CHECKS_FILE = "checks.json"


def scheduled_checks(cfg: Config, name: str, version: int, run_checks, model_dir_of, now: float | None = None) -> dict:
    """The family's scheduled checks of a served version: re-run when `monitoring.checks_every` has passed since the
    last run for that version (kept in <report_dir>/<name>/checks.json), else the last run's result. Returns its
    metrics and {"checks": {"at", "failed", "ran_now"}}; {} when checks are off or the version's model is gone."""
    import time

    from tunesmith.io import atomic_write_json

    if cfg.monitoring.checks_every is None:
        return {}
    _, period = parse_window(cfg.monitoring.checks_every)
    path = report_dir(cfg, name) / CHECKS_FILE
    state = json.loads(path.read_text()) if path.is_file() else {}
    now = time.time() if now is None else now
    last = state.get(str(version))
    ran_now = last is None or now - float(last["at"]) >= period
    if ran_now:
        model_dir = model_dir_of(version)
        if model_dir is None:
            return {}
        result = dict(run_checks(cfg, model_dir))
        if not result:
            return {}  # nothing to check for this config (no regression suite)
        last = {"at": now, "failed": list(result.pop("failed", [])), "metrics": result}
        state[str(version)] = last
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, state)
    at = datetime.fromtimestamp(float(last["at"]), tz=timezone.utc).isoformat(timespec="seconds")
    return {**last["metrics"], "checks": {"at": at, "failed": last["failed"], "ran_now": ran_now}}


def review_section(url: str, model: str, rows: list[dict], objective: float | None) -> dict:
    """The human-review rate: the share of the window's served predictions that `tunesmith review` routed to people
    (every source but training-data label issues), and the backlog (items nobody has labeled yet). The review queue
    shares the prediction log's database; its tables are read by name, so this stage needs no review code."""
    engine = db_engine(url)
    try:
        inspector = sa.inspect(engine)
        if not inspector.has_table("review_items"):
            return {"rate": None, "routed": 0, "pending": None, "objective": objective, "status": "n/a",
                    "note": "the review queue has never been filled (tunesmith review)"}
        meta = sa.MetaData()
        items = sa.Table("review_items", meta, autoload_with=engine)
        labels = sa.Table("review_labels", meta, autoload_with=engine)
        served = {str(r["request_id"]) for r in rows if r.get("request_id")}
        with engine.connect() as conn:
            found = conn.execute(sa.select(items.c.request_id).where(
                items.c.model == model, items.c.source != "label_issue", items.c.request_id.is_not(None))).all()
            pending = conn.execute(sa.select(sa.func.count()).select_from(items).where(
                items.c.model == model, ~items.c.id.in_(sa.select(labels.c.item_id).where(
                    labels.c.undone_at.is_(None))))).scalar_one()
    finally:
        engine.dispose()
    routed = sum(1 for (rid,) in found if rid in served)
    rate = routed / len(rows) if rows else None
    status = "n/a" if rate is None or objective is None else ("breach" if rate > objective else "ok")
    return {"rate": rate, "routed": routed, "pending": int(pending), "objective": objective, "status": status,
            "note": "" if status != "breach" else f"{rate:.1%} of predictions went to people > {objective:.1%} "
                                                  "(monitoring.slo.human_review_rate)"}


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
        "model": name, "task": cfg.task, "window": window, "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "predictions": len(rows), "labeled": len(labeled),
        "labels_stored": len(read_feedback(url, name)),
        "drift": drift_part, "live": live_section(cfg, labeled, labels, name=name, store=store, rows=rows),
        "review": review_section(url, name, rows, cfg.monitoring.slo.human_review_rate),
    }
    if write:
        from tunesmith.monitoring.monitor_report import write_monitor_report

        report["files"] = write_monitor_report(report, report_dir(cfg, name))
    return report
