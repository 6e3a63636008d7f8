"""Evaluate a fine-tuned classifier on the test split against the linear-probe baseline (and the champion).

    report = evaluate(cfg, bundle, run_dir / "model", champion_dir=champion, out_dir=run_dir)
    decision = gate(report.flat_metrics(), cfg.gates, primary_metric=cfg.training.metric,
                    has_champion=report.has_champion, champion_note=report.champion_note)

Uplift is tuned - baseline on the same test rows, with a paired-bootstrap CI for every metric. The champion is
compared only on test rows it did not train on (see `champion.py`). Nothing is written into the model dir: the
temperature fitted on the eval split goes to `out_dir/calibration.json`, and the pipeline ships it with the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.evaluation.baseline import linear_probe
from tunesmith.evaluation.calibration import calibration_summary, softmax
from tunesmith.evaluation.champion import NONE, compare_champion, not_compared_reason
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.gates import primary_name
from tunesmith.evaluation.metrics import CONFUSION_METRICS, label_ids, scalar_metrics
from tunesmith.evaluation.scoring import (
    frame_logits,
    label_order,
    load_classifier,
    model_labels,
    model_metrics,
    paired_deltas,
)
from tunesmith.evaluation.slices import slice_metrics
from tunesmith.io import atomic_write_json, json_safe

CALIBRATION_FILE = "calibration.json"
_CALIBRATION_KEYS = ("temperature", "fitted_on", "bins", "ece", "ece_calibrated")
_CALIBRATION_FLAT = ("ece_calibrated", "nll_calibrated", "temperature")


@dataclass
class EvalReport:
    labels: list[str]
    primary_metric: str
    tuned: dict  # classification_metrics(...) + ece
    baseline: dict
    champion: dict | None  # on the vs_champion_rows test rows only
    uplift: dict[str, dict]  # metric -> {delta, ci_low, ci_high, p_value}
    vs_champion: dict[str, dict] | None
    calibration: dict
    slices: dict
    baseline_probe: dict = field(default_factory=dict)
    bootstrap: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    champion_status: str = NONE  # "none" | "compared" | "not comparable: <reason>"
    vs_champion_rows: int | None = None  # test rows the champion was compared on (those it never trained on)
    vs_champion_excluded: int | None = None  # test rows left out because the champion trained on them

    @property
    def has_champion(self) -> bool:
        """A champion exists (compared or not); `gate(has_champion=...)` fails its rules if it was not compared."""
        return self.champion_status != NONE

    @property
    def champion_note(self) -> str:
        """Why an existing champion was not compared ("" when it was, or when there is none)."""
        return not_compared_reason(self.champion_status)

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
        for key in ("vs_champion_rows", "vs_champion_excluded"):
            if getattr(self, key) is not None:
                flat[key] = float(getattr(self, key))
        return flat


def calibration_record(calibration: dict) -> dict:
    """What `calibration.json` holds: the fitted temperature and the ECE it brings, for serving."""
    return {k: calibration[k] for k in _CALIBRATION_KEYS}


def _tuned_logits(cfg, bundle, model_dir, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    model, tokenizer = load_classifier(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    order = label_order(model, labels)
    if order is None:
        raise EvalError(f"{model_dir}: the model predicts {model_labels(model)}, but the data has labels {labels}",
                        hint="evaluate it with the config (data and data.labels) it was trained with")
    return frame_logits(model, tokenizer, bundle.test, cfg, order), frame_logits(model, tokenizer, bundle.eval, cfg, order)


def evaluate(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
             champion_name: str = "champion", baseline_proba: np.ndarray | None = None,
             out_dir: str | Path | None = None) -> EvalReport:
    """Score the tuned model in `model_dir` on `bundle.test` against the baseline and optional champion.

    Args:
        cfg: the run's Config.
        bundle: DataBundle with train/eval/test frames (`text`, `label`, slice columns) and `labels`.
        model_dir: the fine-tuned model; only read, never written.
        champion_dir: the current champion's model dir, compared on the test rows it did not train on.
        champion_name: how notes name the champion (e.g. "sentiment@champion").
        baseline_proba: precomputed linear-probe test probabilities (skips the probe).
        out_dir: where to write calibration.json (the run dir); None writes nothing.

    Raises:
        EvalError: `model_dir` is not a loadable classifier, or its labels differ from the bundle's.
    """
    if cfg.task.value == "causal-lm":  # generation metrics against the base model (evaluation.causal_lm)
        from tunesmith.families.causal_lm.evaluate import evaluate_causal_lm

        return evaluate_causal_lm(cfg, bundle, model_dir, champion_dir=champion_dir, champion_name=champion_name,
                                  out_dir=out_dir)
    if cfg.task.value == "embedding":  # retrieval metrics against the base model (evaluation.retrieval)
        from tunesmith.families.embedding.evaluate import evaluate_embedding

        return evaluate_embedding(cfg, bundle, model_dir, champion_dir=champion_dir, champion_name=champion_name,
                                  out_dir=out_dir)
    if cfg.task.value == "regression":  # MAE / RMSE / correlations against a ridge probe (evaluation.regression_eval)
        from tunesmith.families.regression.evaluate import evaluate_regression

        return evaluate_regression(cfg, bundle, model_dir, champion_dir=champion_dir, champion_name=champion_name,
                                   out_dir=out_dir)
    if cfg.task.value == "token-classification":  # entity P/R/F1 against a frozen word probe (evaluation.token_eval)
        from tunesmith.families.token_classification.evaluate import evaluate_token_classification

        return evaluate_token_classification(cfg, bundle, model_dir, champion_dir=champion_dir,
                                             champion_name=champion_name, out_dir=out_dir)
    if cfg.task.value == "reranking":  # MRR@10 / nDCG@10 per query against the base bi-encoder
        from tunesmith.families.reranking.evaluate import evaluate_reranking

        return evaluate_reranking(cfg, bundle, model_dir, champion_dir=champion_dir, champion_name=champion_name,
                                  out_dir=out_dir)
    if getattr(cfg.data, "multi_label", False):  # per-label thresholds tuned on eval (evaluation.multilabel_eval)
        from tunesmith.families.multilabel.evaluate import evaluate_multilabel

        return evaluate_multilabel(cfg, bundle, model_dir, champion_dir=champion_dir, champion_name=champion_name,
                                   out_dir=out_dir)
    labels = list(bundle.labels)
    primary = primary_name(cfg.training.metric)
    y_test = label_ids(bundle.test["label"].tolist(), labels)
    y_eval = label_ids(bundle.eval["label"].tolist(), labels)
    logits_test, logits_eval = _tuned_logits(cfg, bundle, model_dir, labels)

    probe_info: dict = {"method": "precomputed"}
    if baseline_proba is None:
        probe = linear_probe(cfg, bundle, metric=primary if primary in CONFUSION_METRICS else "macro_f1")
        baseline_proba, probe_info = probe.test_proba, probe.to_dict()

    proba = {"tuned": softmax(logits_test), "baseline": np.asarray(baseline_proba, dtype=np.float64)}
    preds = {name: p.argmax(axis=1) for name, p in proba.items()}
    report = EvalReport(
        labels=labels, primary_metric=primary, tuned=model_metrics(y_test, proba["tuned"], labels, cfg),
        baseline=model_metrics(y_test, proba["baseline"], labels, cfg), champion=None,
        uplift=paired_deltas(y_test, proba["tuned"], proba["baseline"], cfg), vs_champion=None,
        calibration={}, slices={}, baseline_probe=probe_info,
        bootstrap={"samples": cfg.evaluation.bootstrap.samples, "confidence": cfg.evaluation.bootstrap.confidence,
                   "seed": cfg.seed},
    )

    if champion_dir is not None:
        c = compare_champion(cfg, bundle.test, y_test, proba["tuned"], labels, champion_dir, name=champion_name)
        report.champion, report.vs_champion, report.champion_status = c.metrics, c.vs, c.status
        report.vs_champion_rows, report.vs_champion_excluded = c.rows, c.excluded
        if c.metrics is None:
            report.notes.append(f"champion {c.status}; its vs_champion.* and champion.* gate rules fail")
        report.notes += c.notes
        if c.pred is not None:
            preds["champion"] = c.pred

    cal_cfg = cfg.evaluation.calibration
    report.calibration = calibration_summary(logits_eval, y_eval, logits_test, y_test, bins=cal_cfg.bins,
                                             temperature_scaling=cal_cfg.temperature_scaling)
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / CALIBRATION_FILE, calibration_record(report.calibration))
    report.slices = slice_metrics(bundle.test, y_test, preds, cfg.evaluation.slices, len(labels))
    return report
