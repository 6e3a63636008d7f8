"""Evaluate a fine-tuned single-label classifier on the test split against the linear-probe baseline (and the champion).

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

from tunesmith.contracts import ReportBase, flat_family_metrics
from tunesmith.evaluation.baseline import linear_probe
from tunesmith.evaluation.calibration import calibration_summary, softmax
from tunesmith.evaluation.champion import compare_champion
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
from tunesmith.evaluation.slices import SliceSettings, slice_flat, slice_metrics
from tunesmith.families.classification import SLICE_METRICS
from tunesmith.io import atomic_write_json

CALIBRATION_FILE = "calibration.json"
_CALIBRATION_KEYS = ("temperature", "fitted_on", "bins", "ece", "ece_calibrated")
_CALIBRATION_FLAT = ("ece_calibrated", "nll_calibrated", "temperature")


@dataclass(kw_only=True)
class EvalReport(ReportBase):
    """A single-label classifier's evaluation: tuned vs the linear probe (and champion), calibration, slices."""

    calibration: dict = field(default_factory=dict)
    slices: dict = field(default_factory=dict)
    baseline_probe: dict = field(default_factory=dict)
    vs_champion_rows: int | None = None  # test rows the champion was compared on (those it never trained on)
    vs_champion_excluded: int | None = None  # test rows left out because the champion trained on them

    @property
    def curve_metric(self) -> str:  # the learning curve of the metric checkpoints were chosen on
        return self.primary_metric

    def flat_metrics(self) -> dict[str, float]:
        """The namespace gates read: accuracy, ece, baseline.<m>, uplift.<m>, uplift_ci_low.<m>, vs_champion.<m>,
        slices.max_gap.<m>, slices.<column>.max_gap.<m>, slices.worst_vs_champion.<m>, ..."""
        flat = flat_family_metrics(scalar_metrics(self.tuned), scalar_metrics(self.baseline),
                                   scalar_metrics(self.champion) if self.champion is not None else None,
                                   self.uplift, self.vs_champion)
        flat.update({k: float(self.calibration[k]) for k in _CALIBRATION_FLAT})
        for key in ("vs_champion_rows", "vs_champion_excluded"):
            if getattr(self, key) is not None:
                flat[key] = float(getattr(self, key))
        flat.update(slice_flat(self.slices))
        return flat

    def metrics_document(self) -> dict:
        r = self.to_dict()
        return {k: r[k] for k in ("tuned", "baseline", "champion", "uplift", "vs_champion", "champion_status",
                                  "vs_champion_rows", "vs_champion_excluded", "calibration", "slices",
                                  "baseline_probe", "bootstrap", "notes")}

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.classification.report import sections

        return sections(self)


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
    champion_preds = None
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
            champion_preds = (c.pred, c.mask)

    cal_cfg = cfg.evaluation.calibration
    report.calibration = calibration_summary(logits_eval, y_eval, logits_test, y_test, bins=cal_cfg.bins,
                                             temperature_scaling=cal_cfg.temperature_scaling)
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / CALIBRATION_FILE, calibration_record(report.calibration))
    report.slices = slice_metrics(bundle.test, y_test, preds, cfg.evaluation.slices, len(labels),
                                  metrics=SLICE_METRICS, settings=SliceSettings.of(cfg), champion=champion_preds)
    return report


def probe_eval(cfg, bundle) -> float | None:
    """The linear probe's training.metric on the eval split (C chosen there, as in `evaluate`); None when the metric
    is not one the probe is scored on (loss) or there is no eval split. `bundle` may lack its test split."""
    metric = cfg.training.metric
    if metric not in CONFUSION_METRICS or len(bundle.eval) == 0:
        return None
    return linear_probe(cfg, bundle, metric=metric).eval_score
