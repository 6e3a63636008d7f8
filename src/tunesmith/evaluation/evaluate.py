"""Evaluate a fine-tuned classifier on the test split against the linear-probe baseline (and the champion).

    report = evaluate(cfg, bundle, run_dir / "model", champion_dir=champion)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=cfg.training.metric)

Uplift is tuned - baseline on the same test rows, with a paired-bootstrap CI for every metric; the temperature fitted on
the eval split is saved beside the model as calibration.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import AutoModelForSequenceClassification

from tunesmith.evaluation.baseline import linear_probe
from tunesmith.evaluation.calibration import calibration_summary, expected_calibration_error, softmax
from tunesmith.evaluation.gates import primary_name
from tunesmith.evaluation.metrics import CONFUSION_METRICS, classification_metrics, label_ids, scalar_metrics
from tunesmith.evaluation.significance import bootstrap_delta, metric_stats
from tunesmith.evaluation.slices import slice_metrics
from tunesmith.io import atomic_write_json, json_safe
from tunesmith.tasks.classification import load_tokenizer, predict_logits

CALIBRATION_FILE = "calibration.json"
_CALIBRATION_FLAT = ("ece_calibrated", "nll_calibrated", "temperature")


@dataclass
class EvalReport:
    labels: list[str]
    primary_metric: str
    tuned: dict  # classification_metrics(...) + ece
    baseline: dict
    champion: dict | None
    uplift: dict[str, dict]  # metric -> {delta, ci_low, ci_high, p_value}
    vs_champion: dict[str, dict] | None
    calibration: dict
    slices: dict
    baseline_probe: dict = field(default_factory=dict)
    bootstrap: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return json_safe({k: getattr(self, k) for k in self.__dataclass_fields__})

    def flat_metrics(self) -> dict[str, float]:
        """The namespace gates read: accuracy, ece, baseline.<m>, uplift.<m>, uplift_ci_low.<m>, vs_champion.<m>, ..."""
        flat = scalar_metrics(self.tuned)
        flat.update({k: float(self.calibration[k]) for k in _CALIBRATION_FLAT})
        flat.update({f"baseline.{k}": v for k, v in scalar_metrics(self.baseline).items()})
        if self.champion is not None:
            flat.update({f"champion.{k}": v for k, v in scalar_metrics(self.champion).items()})
        for name, deltas in (("uplift", self.uplift), ("vs_champion", self.vs_champion or {})):
            for metric, stats in deltas.items():
                flat[f"{name}.{metric}"] = float(stats["delta"])
                for stat in ("ci_low", "ci_high", "p_value"):
                    if stat in stats:
                        flat[f"{name}_{stat}.{metric}"] = float(stats[stat])
        return flat


def load_classifier(model_dir: str | Path, *, trust_remote_code: bool = False):
    """A saved sequence classifier (LoRA already merged by training) and its tokenizer."""
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
    return model.eval(), load_tokenizer(str(model_dir), trust_remote_code=trust_remote_code)


def label_order(model, labels: list[str]) -> list[int] | None:
    """Column of each of `labels` in the model's output, or None when the model has another label set."""
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if sorted(names) == sorted(labels):
        return [names.index(label) for label in labels]
    if names == [f"LABEL_{i}" for i in range(len(labels))]:  # saved without names: trust the order
        return list(range(len(labels)))
    return None


def _logits(model, tokenizer, frame, cfg, order: list[int]) -> np.ndarray:
    texts = frame["text"].astype(str).tolist()
    out = predict_logits(model, tokenizer, texts, max_length=cfg.model.max_length,
                         batch_size=cfg.training.eval_batch_size)
    return out[:, order]


def _model_metrics(y: np.ndarray, proba: np.ndarray, labels: list[str], cfg) -> dict:
    out = classification_metrics(y, proba, labels, top_k=cfg.evaluation.top_k)
    out["ece"] = expected_calibration_error(proba, y, cfg.evaluation.calibration.bins)
    return out


def _deltas(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, cfg) -> dict[str, dict]:
    """a - b for every scalar metric, each with a paired-bootstrap CI and p-value on the same resamples."""
    boot, ev = cfg.evaluation.bootstrap, cfg.evaluation
    stats_a = metric_stats(y, proba_a, top_k=ev.top_k, bins=ev.calibration.bins)
    stats_b = metric_stats(y, proba_b, top_k=ev.top_k, bins=ev.calibration.bins)
    return {m: bootstrap_delta(len(y), stats_a[m], stats_b[m], samples=boot.samples,
                               confidence=boot.confidence, seed=cfg.seed) for m in stats_a}


def evaluate(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
             baseline_proba: np.ndarray | None = None) -> EvalReport:
    """Score the tuned model in `model_dir` on `bundle.test` against the baseline and optional champion.

    Args:
        cfg: the run's Config.
        bundle: DataBundle with train/eval/test frames (`text`, `label`, slice columns) and `labels`.
        model_dir: the fine-tuned model; calibration.json is written here.
        champion_dir: the current champion's model dir, compared on the same test rows.
        baseline_proba: precomputed linear-probe test probabilities (skips the probe).

    Raises:
        ValueError: the tuned model's labels differ from the bundle's.
    """
    labels = list(bundle.labels)
    primary = primary_name(cfg.training.metric)
    y_test = label_ids(bundle.test["label"].tolist(), labels)
    y_eval = label_ids(bundle.eval["label"].tolist(), labels)
    notes: list[str] = []

    model, tokenizer = load_classifier(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    order = label_order(model, labels)
    if order is None:
        raise ValueError(f"{model_dir}: the model predicts {list(model.config.id2label.values())}, "
                         f"but the data has labels {labels}; evaluate it with the config it was trained with")
    logits_test = _logits(model, tokenizer, bundle.test, cfg, order)
    logits_eval = _logits(model, tokenizer, bundle.eval, cfg, order)
    del model

    probe_info: dict = {"method": "precomputed"}
    if baseline_proba is None:
        probe = linear_probe(cfg, bundle, metric=primary if primary in CONFUSION_METRICS else "macro_f1")
        baseline_proba, probe_info = probe.test_proba, probe.to_dict()

    proba = {"tuned": softmax(logits_test), "baseline": np.asarray(baseline_proba, dtype=np.float64)}
    tuned = _model_metrics(y_test, proba["tuned"], labels, cfg)
    baseline = _model_metrics(y_test, proba["baseline"], labels, cfg)
    uplift = _deltas(y_test, proba["tuned"], proba["baseline"], cfg)

    champion = vs_champion = None
    if champion_dir is not None:
        c_model, c_tok = load_classifier(champion_dir, trust_remote_code=cfg.model.trust_remote_code)
        c_order = label_order(c_model, labels)
        if c_order is None:
            notes.append(f"champion at {champion_dir} has labels {list(c_model.config.id2label.values())}, "
                         "not this run's; it was not compared")
        else:
            proba["champion"] = softmax(_logits(c_model, c_tok, bundle.test, cfg, c_order))
            champion = _model_metrics(y_test, proba["champion"], labels, cfg)
            vs_champion = _deltas(y_test, proba["tuned"], proba["champion"], cfg)

    cal_cfg = cfg.evaluation.calibration
    calibration = calibration_summary(logits_eval, y_eval, logits_test, y_test, bins=cal_cfg.bins,
                                      temperature_scaling=cal_cfg.temperature_scaling)
    atomic_write_json(Path(model_dir) / CALIBRATION_FILE, {
        k: calibration[k] for k in ("temperature", "fitted_on", "bins", "ece", "ece_calibrated")})

    preds = {name: p.argmax(axis=1) for name, p in proba.items()}
    slices = slice_metrics(bundle.test, y_test, preds, cfg.evaluation.slices, len(labels))
    boot = cfg.evaluation.bootstrap
    return EvalReport(
        labels=labels, primary_metric=primary, tuned=tuned, baseline=baseline, champion=champion,
        uplift=uplift, vs_champion=vs_champion, calibration=calibration, slices=slices,
        baseline_probe=probe_info, notes=notes,
        bootstrap={"samples": boot.samples, "confidence": boot.confidence, "seed": cfg.seed},
    )
