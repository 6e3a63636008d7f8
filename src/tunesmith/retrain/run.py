"""`tunesmith retrain`: next dataset version -> train (from the champion or the base) -> evaluate on the frozen test
set and on recent labeled traffic -> gate against the champion -> register a challenger with its lineage.

    outcome = retrain(cfg, trigger="manual")   # cfg: the model's own config (data, training, gates, retrain)

The training run is `pipeline.run` on a config derived from `cfg` (data.train/eval/test = the dataset version's
files, model.init_from = the champion's dir; model.base stays the base, so the baseline and the uplift gates still
mean "better than the base"), so the data gates (dedup, leakage against the frozen test, PII) and the frozen-test
gates (`gates:` vs champion, paired bootstrap) are the ones every run uses. The challenger is
registered only when those and `retrain.recent_gates` (challenger vs champion on the recent slice) pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.config import Config, config_from_dict
from tunesmith.config.family_rules import slice_gate_applies
from tunesmith.families import get as family
from tunesmith.io import atomic_write_json
from tunesmith.retrain.dataset import (
    DatasetVersion,
    build_dataset_version,
    collect_labels,
    count_new_labels,
    open_version,
)

TAG_PREFIX = "tunesmith."
DATASET_TAG = "tunesmith.dataset_version"


class RetrainError(ValueError):
    """A retrain that cannot start (no champion, no new labels, a family it does not cover); says what to do."""


@dataclass
class RetrainOutcome:
    dataset: DatasetVersion
    passed: bool
    reasons: list[str]
    run: Any = None  # pipeline.RunOutcome
    recent: dict = field(default_factory=dict)
    registered_version: int | None = None
    parent_version: int | None = None

    def to_dict(self) -> dict:
        return {"dataset_version": self.dataset.version, "dataset_dir": str(self.dataset.path), "passed": self.passed,
                "reasons": self.reasons, "registered_version": self.registered_version,
                "parent_version": self.parent_version, "recent": self.recent,
                "run_dir": str(self.run.run_dir) if self.run else None}


def champion_info(store, name: str) -> tuple[int | None, int | None]:
    """(champion version, the dataset version it was trained on) from the registry."""
    from tunesmith.registry.versions import CHAMPION, require_model

    client = store.client
    try:
        model = require_model(client, name)
    except Exception:
        return None, None
    if CHAMPION not in model.aliases:
        return None, None
    version = int(model.aliases[CHAMPION])
    tags = client.get_model_version(name, str(version)).tags or {}
    dataset = tags.get(DATASET_TAG)
    return version, int(dataset) if dataset and dataset.isdigit() else None


def derived_config(cfg: Config, dataset: DatasetVersion, base: str | None) -> Config:
    """`cfg` training on the dataset version's files (absolute paths), starting from `base` when given."""
    raw = cfg.model_dump(mode="json")
    raw["data"].update({
        "path": None, "train": str(dataset.file("train").resolve()), "eval": str(dataset.file("eval").resolve()),
        "test": str(dataset.file("test").resolve()), "format": "jsonl", **family(cfg.task).dataset.data,
        "labels": dataset.manifest["labels"] or None, "drop_labels": [], "slice_columns": [], "max_rows": None,
    })
    raw["evaluation"]["slices"] = [s for s in raw["evaluation"]["slices"] if s == "text_length"]
    # dataset versions keep no slice columns: slice gates on the columns dropped here cannot be measured
    raw["gates"]["rules"] = [str(r) for r in cfg.gates.rules if slice_gate_applies(r.metric, raw["evaluation"]["slices"])]
    raw["registry"]["auto_register"] = False  # registered below, after the recent-slice gates
    if base is not None:  # the champion's weights; model.base stays the base its baseline and uplift refer to
        raw["model"]["init_from"] = base
    derived = config_from_dict(raw)
    derived._source_path = cfg.source_path  # lineage: the git state of the config's repository
    return derived


def _proba(model_dir: Path, texts: list[str], labels: list[str], max_length: int) -> np.ndarray:
    from tunesmith.evaluation.scoring import label_order, load_classifier
    from tunesmith.monitoring.reference import predict_proba, temperature_of

    model, tokenizer = load_classifier(model_dir)
    order = label_order(model, labels)
    if order is None:
        raise RetrainError(f"{model_dir}: its labels differ from the dataset's {labels}; it cannot be compared")
    return predict_proba(model, tokenizer, texts, max_length=max_length, temperature=temperature_of(model_dir))[:, order]


def evaluate_recent(cfg: Config, recent: pd.DataFrame, labels: list[str], challenger_dir: Path,
                    champion_dir: Path | None) -> dict:
    """Challenger vs champion on the recent slice: metrics, paired-bootstrap deltas and the recent gates."""
    from tunesmith.evaluation import gate
    from tunesmith.evaluation.metrics import scalar_metrics
    from tunesmith.evaluation.scoring import model_metrics, paired_deltas

    minimum = cfg.retrain.min_recent_rows
    if len(recent) < minimum or champion_dir is None:
        why = (f"{len(recent)} recent rows < retrain.min_recent_rows={minimum}" if len(recent) < minimum
               else "no champion to compare with")
        return {"rows": len(recent), "passed": False, "note": why}
    y = np.array([labels.index(str(v)) for v in recent["label"]])
    texts = recent["text"].astype(str).tolist()
    tuned = _proba(challenger_dir, texts, labels, cfg.model.max_length)
    champ = _proba(champion_dir, texts, labels, cfg.model.max_length)
    challenger_m, champion_m = model_metrics(y, tuned, labels, cfg), model_metrics(y, champ, labels, cfg)
    deltas = paired_deltas(y, tuned, champ, cfg)
    flat = scalar_metrics(challenger_m) | {f"champion.{k}": v for k, v in scalar_metrics(champion_m).items()}
    for metric, stats in deltas.items():
        flat[f"vs_champion.{metric}"] = float(stats["delta"])
        for stat in ("ci_low", "ci_high", "p_value"):
            if stat in stats:
                flat[f"vs_champion_{stat}.{metric}"] = float(stats[stat])
    decision = gate(flat, cfg.retrain.recent_gates, primary_metric=cfg.training.metric, has_champion=True)
    return {"rows": len(recent), "passed": decision.passed, "metrics": flat, "decision": decision.to_dict(),
            "challenger": scalar_metrics(challenger_m), "champion": scalar_metrics(champion_m)}


def covers(task) -> bool:
    """Whether retrain covers a family: it keeps dataset versions and its feedback becomes training rows."""
    return task.dataset is not None and task.feedback is not None and task.feedback.to_row is not None


def classifier_recent(cfg: Config, derived: Config, dataset: DatasetVersion, challenger_dir: Path,
                      champion_dir: Path | None, name: str) -> dict:
    """A classifier on the recent slice: calibrated probabilities of challenger and champion, paired deltas."""
    recent = pd.read_json(dataset.file("recent"), lines=True, dtype={"text": str, "label": str})
    if recent.empty:
        recent = pd.DataFrame(columns=["text", "label"])
    return evaluate_recent(cfg, recent, dataset.manifest["labels"], challenger_dir, champion_dir)


def family_recent(cfg: Config, derived: Config, dataset: DatasetVersion, challenger_dir: Path,
                  champion_dir: Path | None, name: str) -> dict:
    """Any family on the recent slice: its own evaluation with the recent rows as the test split, the challenger
    vs the champion (paired bootstrap), gated by retrain.recent_gates (default: the family's, e.g. vs_champion.rmse
    <= 0 for regression)."""
    from tunesmith.config import CheckPolicy
    from tunesmith.data import DataChecksFailed, DataError, prepare_data
    from tunesmith.evaluation import gate
    from tunesmith.evaluation.errors import EvalError

    rows = dataset.manifest["rows"]["recent"]
    minimum = cfg.retrain.min_recent_rows
    if rows < minimum or champion_dir is None:
        why = f"{rows} recent rows < retrain.min_recent_rows={minimum}" if rows < minimum else "no champion to compare with"
        return {"rows": rows, "passed": False, "note": why}
    judged = derived.model_copy(deep=True)
    judged.data.test = str(dataset.file("recent").resolve())
    # Recent traffic repeats what users asked before (paraphrases of one question): judged as it comes, like a
    # classifier's recent slice; the frozen test split keeps the leakage gate.
    judged.data.checks.leakage.policy = CheckPolicy.WARN
    try:
        bundle = prepare_data(judged, None)
        report = family(cfg.task).evaluate(judged, bundle, Path(challenger_dir), champion_dir=Path(champion_dir),
                                           champion_name=name, out_dir=None)
    except (DataError, DataChecksFailed, EvalError) as exc:  # a slice the family cannot score (a reranked query with one document)
        return {"rows": rows, "passed": False, "note": f"the recent slice cannot be evaluated: {exc}"}
    flat = report.flat_metrics()
    gates = cfg.retrain.recent_gates
    rules = gates if "recent_gates" in cfg.retrain.model_fields_set else type(gates)(
        rules=list(family(cfg.task).dataset.recent_gates))
    decision = gate(flat, rules, primary_metric=report.primary_metric, has_champion=True)
    return {"rows": len(bundle.test), "passed": decision.passed, "metrics": flat, "decision": decision.to_dict(),
            "challenger": dict(report.tuned), "champion": dict(report.champion or {})}


def recent_summary(recent: dict, task: str) -> str:
    """One line on the recent slice: the family's recent-gate metric, challenger vs champion with the paired CI
    (what `monitor --act`, `retrain` and the loop examples print), or why it was not judged."""
    rows = recent.get("rows", 0)
    if recent.get("note"):
        return f"recent slice: {rows} rows, {recent['note']}"
    rule = (family(task).dataset.recent_gates or ("vs_champion.macro_f1 >= 0",))[0]
    metric = rule.split()[0].split(".", 1)[1]
    m = recent.get("metrics") or {}

    def num(key: str, sign: str = "") -> str:
        value = m.get(key)
        return "n/a" if value is None else format(float(value), f"{sign}.3f")

    return (f"recent slice: {rows} rows, {metric} challenger {num(metric)} vs champion {num('champion.' + metric)} "
            f"(delta {num('vs_champion.' + metric, '+')}, 95% CI [{num('vs_champion_ci_low.' + metric, '+')}, "
            f"{num('vs_champion_ci_high.' + metric, '+')}]): {'passed' if recent.get('passed') else 'failed'}")


def retrain(cfg: Config, *, name: str | None = None, trigger: str = "manual", store=None, labels: list[dict] | None
            = None, say=lambda _: None) -> RetrainOutcome:
    """Build the next dataset version, train, evaluate, gate and (when every gate passes) register a challenger."""
    from tunesmith.data import DataChecksFailed
    from tunesmith.monitoring.monitor import db_url
    from tunesmith.pipeline import run as run_pipeline
    from tunesmith.registry import model_dir_for, open_store

    name = name or cfg.name
    task = family(cfg.task)
    if not covers(task):
        raise RetrainError(f"retrain does not cover {cfg.task} models yet ({name}): its family keeps no dataset "
                           "versions or its feedback becomes no training rows")
    store = store or open_store(cfg.registry)
    champion, dataset_number = champion_info(store, name)
    parent = open_version(cfg, name, dataset_number) if dataset_number is not None else None
    labels = collect_labels(cfg, db_url(cfg), name) if labels is None else labels
    if count_new_labels(labels, parent) == 0:
        where = f"dataset v{parent.version}" if parent else "the config's data"
        raise RetrainError(f"no new labels for {name} since {where}, which the champion was trained on; "
                           "send labels first (POST /v1/feedback, `tunesmith feedback import`, the review queue)")
    dataset = build_dataset_version(cfg, name, labels, parent=parent, trigger=trigger)
    m = dataset.manifest
    say(f"dataset v{dataset.version}: {m['rows']['train']} train rows ({m['train_from_parent']} rehearsed from "
        f"{'v' + str(parent.version) if parent else 'the config data'}, {m['new_labels_trained']} new), "
        f"{m['rows']['recent']} recent held out, {m['quarantined']} quarantined")
    champion_dir = model_dir_for(name, "champion", store=store) if champion is not None else None
    base = str(champion_dir) if cfg.retrain.init_from == "champion" and champion_dir is not None else None
    derived = derived_config(cfg, dataset, base)
    left_out = [str(r) for r in cfg.gates.rules if str(r) not in {str(d) for d in derived.gates.rules}]
    if left_out:  # said, never silently: the version's rows keep no slice columns but text_length
        say(f"gates not measurable on dataset v{dataset.version} (its rows keep no slice columns but text_length), "
            f"left out of this retrain: {'; '.join(left_out)}")
    try:
        outcome = run_pipeline(derived, say=say)
    except DataChecksFailed as exc:  # the new version fails a data gate: a failed retrain with the reason, no crash
        say(f"dataset v{dataset.version} failed its data gates; nothing trained")
        return RetrainOutcome(dataset, False, [f"data gates failed on dataset v{dataset.version} ({dataset.path}): "
                                               + "; ".join(map(str, exc.violations))], parent_version=champion)
    judge = task.dataset.recent_eval or family_recent
    recent_report = judge(cfg, derived, dataset, outcome.train_result.model_dir, champion_dir, name)
    atomic_write_json(outcome.run_dir / "recent_eval.json", recent_report)
    reasons = []
    if not outcome.passed:
        reasons.append("frozen-test gates failed: " + "; ".join(map(str, outcome.decision.to_dict()["failed"])))
    if not recent_report["passed"]:
        reasons.append("recent-slice gates failed: " + (recent_report.get("note") or "; ".join(
            map(str, recent_report["decision"]["failed"]))))
    result = RetrainOutcome(dataset, not reasons, reasons, outcome, recent_report, parent_version=champion)
    _record(store, outcome.mlflow_run_id, dataset, recent_report)
    if result.passed:
        result.registered_version = _register(derived, name, outcome, dataset, champion, trigger, recent_report, store)
        say(f"registered {name} version {result.registered_version} as challenger")
    return result


def _record(store, run_id: str, dataset: DatasetVersion, recent: dict) -> None:
    """The recent-slice evaluation and the dataset manifest travel with the MLflow run, whatever the verdict."""
    client = store.client
    from tunesmith.registry.runs import metric_name

    for key, value in (recent.get("metrics") or {}).items():
        if isinstance(value, int | float) and np.isfinite(value):
            client.log_metric(run_id, metric_name(f"recent.{key}"), float(value))
    client.log_artifact(run_id, str(dataset.path / "manifest.json"), "dataset")
    client.set_tag(run_id, DATASET_TAG, str(dataset.version))


def _register(derived: Config, name: str, outcome, dataset: DatasetVersion, parent: int | None, trigger: str,
              recent: dict, store) -> int:
    from tunesmith.data.checks import lineage_tags
    from tunesmith.hub import resolve_model
    from tunesmith.registry import collect_lineage, register_version

    base = resolve_model(derived.model.base, derived.model.revision)
    lineage = collect_lineage(derived, data_fingerprint=outcome.data_report.fingerprint, base_model_path=base.path,
                              base_revision=base.pinned_as, gate_decision=outcome.decision.to_dict())
    lineage.update(lineage_tags(outcome.data_report.checks))
    lineage["data_card"] = f"runs:/{outcome.mlflow_run_id}/data_card.json"
    m = dataset.manifest
    lineage.update({
        "tunesmith.parent_version": str(parent) if parent is not None else "none",
        DATASET_TAG: str(dataset.version),
        "tunesmith.dataset_parent": str(m["parent"]) if m["parent"] is not None else "config data",
        "tunesmith.label_sources": json.dumps(m["label_sources"], sort_keys=True),
        "tunesmith.new_labels": str(m["new_labels_trained"]),
        "tunesmith.trigger": trigger,
        "tunesmith.recent_gate": "passed" if recent["passed"] else "failed",
        "tunesmith.recent_rows": str(recent["rows"]),
        "tunesmith.recent_vs_champion": json.dumps({k: round(v, 4) for k, v in recent["metrics"].items()
                                                    if k.startswith("vs_champion.")}, sort_keys=True),
    })
    info = register_version(name, run_id=outcome.mlflow_run_id, lineage=lineage, store=store,
                            description=f"retrained from version {parent} on dataset v{dataset.version} ({trigger})")
    return info.version
