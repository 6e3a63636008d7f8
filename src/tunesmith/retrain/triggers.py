"""Retrain triggers and `tunesmith monitor --act`: safe to run from cron.

    decision = evaluate_triggers(cfg, report, new_labels=120, state=state)   # which triggers fire, and why
    result = act(cfg, report)                                                # runs retrain when one fires

A file lock (<report_dir>/<name>/act.lock) means two `--act` runs never overlap: the second one returns at once
with action "locked". Each trigger firing has a key (drift: the last prediction id of the window; live F1: the
same; new labels: the newest label key; schedule: the period number); keys acted on are kept in state.json, so a
firing that was acted on is never acted on twice, whether its retrain passed or not.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from tunesmith.config import Config, parse_window
from tunesmith.io import atomic_write_json

STATE_FILE = "state.json"
LOCK_FILE = "act.lock"


def load_state(directory: Path) -> dict:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return {"acted": [], "history": [], "last_retrain": None}
    return json.loads(path.read_text())


def evaluate_triggers(cfg: Config, report: dict, *, new_labels: int, newest_label: str | None,
                      state: dict, now: float | None = None) -> dict:
    """{"fired": [{name, reason, key}], "skipped": [...], "new_labels": n}; already-acted firings are skipped."""
    t = cfg.monitoring.triggers
    now = now or time.time()
    candidates = []
    drift = report.get("drift") or {}
    if t.drift and drift.get("detected"):
        candidates.append({"name": "drift", "reason": f"drift declared: {', '.join(drift['flagged'])} flagged",
                           "key": f"drift:{drift.get('last_prediction_id')}"})
    live = report.get("live") or {}
    if t.live_f1_below_slo and cfg.monitoring.slo.macro_f1 is not None and live.get("kind") != "quality":
        # a classifier's SLO; another family's live macro-F1 (multi-label) answers to monitoring.slo.targets below
        for version, v in live.get("versions", {}).items():
            f1 = v.get("macro_f1")
            if v["status"] == "breach" and f1 is not None and f1 < cfg.monitoring.slo.macro_f1:
                candidates.append({"name": "live_f1_below_slo", "reason": f"version {version}: {v['note']}",
                                   "key": f"live_f1:{version}:{drift.get('last_prediction_id', report['predictions'])}"})
    if t.live_quality_below_slo and live.get("kind") == "quality":
        for version, v in live.get("versions", {}).items():
            if v["status"] == "breach":
                candidates.append({"name": "live_quality_below_slo", "reason": f"version {version}: {v['note']}",
                                   "key": f"live_quality:{version}:{drift.get('last_prediction_id', report['predictions'])}"})
    if t.new_labels is not None and new_labels >= t.new_labels:
        candidates.append({"name": "new_labels", "reason": f"{new_labels} new labels >= {t.new_labels}",
                           "key": f"labels:{newest_label}"})
    if t.schedule is not None:
        _, period = parse_window(t.schedule)
        last = state.get("last_retrain")
        if last is None or now - last >= period:
            candidates.append({"name": "schedule", "reason": f"no retrain in the last {t.schedule}",
                               "key": f"schedule:{int(now // period)}"})
    acted = set(state.get("acted", []))
    fired = [c for c in candidates if c["key"] not in acted]
    skipped = [{**c, "why": "already acted on"} for c in candidates if c["key"] in acted]
    if fired and new_labels < t.min_new_labels:
        skipped += [{**c, "why": f"only {new_labels} new labels < monitoring.triggers.min_new_labels="
                     f"{t.min_new_labels}"} for c in fired]
        fired = []
    return {"fired": fired, "skipped": skipped, "new_labels": new_labels}


def act(cfg: Config, report: dict, *, name: str | None = None, store=None, say=lambda _: None,
        lock_timeout: float = 0) -> dict:
    """Evaluate the triggers and, when one fires, run retrain; under a file lock, recording what was acted on."""
    from tunesmith.families import get
    from tunesmith.monitoring.monitor import db_url, report_dir
    from tunesmith.registry import open_store
    from tunesmith.retrain import collect_labels, retrain
    from tunesmith.retrain.dataset import count_new_labels, label_key, open_version
    from tunesmith.retrain.run import champion_info, covers

    name = name or cfg.name
    if not covers(get(cfg.task)):
        return {"fired": [], "skipped": [], "action": "none",
                "note": f"retrain does not cover {cfg.task} models yet; their drift and live quality are reported, "
                        "not acted on"}
    directory = report_dir(cfg, name)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK_FILE))
    try:
        lock.acquire(timeout=lock_timeout)
    except Timeout:
        return {"fired": [], "skipped": [], "action": "locked",
                "note": f"another `tunesmith monitor --act` holds {directory / LOCK_FILE}; nothing done"}
    try:
        store = store or open_store(cfg.registry)
        state = load_state(directory)
        labels = collect_labels(cfg, db_url(cfg), name)
        _, dataset_number = champion_info(store, name)
        parent = open_version(cfg, name, dataset_number) if dataset_number is not None else None
        newest = max(labels, key=lambda r: str(r["labeled_at"]), default=None)
        decision = evaluate_triggers(cfg, report, new_labels=count_new_labels(labels, parent),
                                     newest_label=label_key(newest) if newest else None, state=state)
        if not decision["fired"]:
            decision["action"] = "none"
            return decision
        if state.get("paused"):  # an operator paused retraining: report what fired, act on nothing, remember nothing
            p = state["paused"]
            decision.update(action="paused", note=f"retraining paused by {p['by']} at {p['at']}: {p['reason']} "
                                                  f"(`tunesmith ops resume-retraining`)")
            return decision
        trigger = ",".join(c["name"] for c in decision["fired"])
        say(f"retrain triggered by {trigger}")
        # Recorded before training: a crash mid-retrain must not make every later cron run retry the same firing.
        state["acted"] = (state.get("acted", []) + [c["key"] for c in decision["fired"]])[-500:]
        state["last_retrain"] = time.time()
        atomic_write_json(directory / STATE_FILE, state)
        outcome = retrain(cfg, name=name, trigger=trigger, store=store, labels=labels, say=say)
        decision["action"] = "retrained"
        decision["retrain"] = outcome.to_dict()
        state["history"] = (state.get("history", []) + [{
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trigger": trigger,
            "dataset_version": outcome.dataset.version, "passed": outcome.passed,
            "registered_version": outcome.registered_version, "reasons": outcome.reasons}])[-100:]
        atomic_write_json(directory / STATE_FILE, state)
        return decision
    finally:
        lock.release()


def pause(cfg: Config, *, reason: str, by: str, name: str | None = None) -> dict:
    """Stop `monitor --act` from retraining `name` until `resume`: the triggers are still evaluated and reported (a
    firing seen while paused is acted on after the resume). Returns the pause record."""
    return _set_pause(cfg, name or cfg.name, {"reason": reason, "by": by,
                                              "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def resume(cfg: Config, *, name: str | None = None) -> dict | None:
    """Lift a pause; returns the pause that was lifted, or None when retraining was not paused."""
    return _set_pause(cfg, name or cfg.name, None)


def _set_pause(cfg: Config, name: str, record: dict | None) -> dict | None:
    from tunesmith.monitoring.monitor import report_dir

    directory = report_dir(cfg, name)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK_FILE))
    try:  # never while `--act` decides or records: it would write its older state over the pause
        lock.acquire(timeout=30)
    except Timeout:
        raise PauseBusy(f"a `tunesmith monitor --act` for {name} holds {directory / LOCK_FILE} (a retrain is running); "
                        "it finishes on its own; run this again afterwards") from None
    try:
        state = load_state(directory)
        before = state.get("paused")
        state["paused"] = record
        atomic_write_json(directory / STATE_FILE, state)
    finally:
        lock.release()
    return record if record is not None else before


class PauseBusy(RuntimeError):
    """A retrain holds the act lock, so a pause or resume cannot be recorded now."""


def act_and_report(cfg: Config, report: dict, *, name: str | None = None, store=None, say=lambda _: None) -> dict:
    """`tunesmith monitor --act`: act on the report's evidence, then rewrite the report's files with what was done."""
    from tunesmith.monitoring.monitor_report import write_monitor_report

    report["triggers"] = act(cfg, report, name=name, store=store, say=say)
    report["files"] = write_monitor_report(report, Path(report["files"]["json"]).parent)
    return report


def trigger_lines(report: dict) -> list[str]:
    """What `--act` did, in a few lines: the triggers that fired, the retrain's verdict and its recent slice."""
    from tunesmith.retrain.run import recent_summary

    trig = report.get("triggers")
    if not trig:
        return []
    lines = [f"triggers fired: {', '.join(t['name'] for t in trig['fired']) or 'none'}; action: {trig['action']}"
             + (f" ({trig['note']})" if trig.get("note") else "")]
    r = trig.get("retrain")
    if r:
        verdict = f"registered version {r['registered_version']} as challenger" if r["passed"] else \
            "not registered: " + "; ".join(r["reasons"])
        lines.append(f"retrain: dataset v{r['dataset_version']}: {verdict}")
        if r.get("recent"):
            lines.append(recent_summary(r["recent"], report.get("task") or "classification"))
    return lines
