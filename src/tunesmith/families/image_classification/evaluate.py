"""Evaluate a fine-tuned image classifier on the test images against the linear probe on the frozen base
backbone's features (and the champion, on the test images it never trained on), with paired-bootstrap CIs.

    report = evaluate(cfg, bundle, run_dir / "model", champion_dir=None, out_dir=run_dir)

The metrics are the text classifier's (accuracy, macro-F1, per class, top-k, ECE, confusion matrix, slices), from the
same evaluation code. The temperature fitted on the eval split goes to out_dir/calibration.json and ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.contracts import COMPARED, ReportBase, flat_family_metrics
from tunesmith.data.images import IMAGE
from tunesmith.evaluation.baseline import fit_probe
from tunesmith.evaluation.calibration import calibration_summary, softmax
from tunesmith.evaluation.champion import champion_on_unseen, note_unseen_share
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.gates import primary_name
from tunesmith.evaluation.metrics import CONFUSION_METRICS, label_ids, scalar_metrics
from tunesmith.evaluation.scoring import model_metrics, paired_deltas
from tunesmith.evaluation.slices import SliceSettings, slice_flat, slice_metrics
from tunesmith.families.image_classification.model import (
    build_model,
    image_features,
    image_logits,
    load_classifier,
    load_processor,
)
from tunesmith.families.image_classification.transforms import Preprocess
from tunesmith.io import atomic_write_json

CALIBRATION_FILE = "calibration.json"
SLICE_METRICS = ("accuracy", "macro_f1")
WORST = 12  # misclassified test images shown in the report, least confident in the true class first


@dataclass(kw_only=True)
class ImageEvalReport(ReportBase):
    """Tuned vs the frozen-feature linear probe (and champion), calibration, slices, the worst test images."""

    calibration: dict = field(default_factory=dict)
    slices: dict = field(default_factory=dict)
    baseline_probe: dict = field(default_factory=dict)
    worst: list[dict] = field(default_factory=list)  # {image, label, predicted, p_true}

    @property
    def curve_metric(self) -> str:
        return self.primary_metric

    def flat_metrics(self) -> dict[str, float]:
        flat = flat_family_metrics(scalar_metrics(self.tuned), scalar_metrics(self.baseline),
                                   scalar_metrics(self.champion) if self.champion is not None else None,
                                   self.uplift, self.vs_champion)
        flat.update({k: float(self.calibration[k]) for k in ("ece_calibrated", "temperature")})
        flat.update(slice_flat(self.slices))
        return flat

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.image_classification.report import sections

        return sections(self)


def evaluate(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
             champion_name: str = "champion", out_dir: str | Path | None = None) -> ImageEvalReport:
    """Score the tuned model in `model_dir` on `bundle.test`; only reads it.

    Raises:
        EvalError: `model_dir` does not load, or predicts other labels than the bundle's.
    """
    labels = list(bundle.labels)
    primary = primary_name(cfg.training.metric)
    model, processor = _load(model_dir, labels)
    prep = Preprocess.of(processor, cfg.image.size)
    y_test = label_ids(bundle.test["label"].tolist(), labels)
    y_eval = label_ids(bundle.eval["label"].tolist(), labels)
    logits_test = image_logits(model, prep, bundle.test[IMAGE].tolist(), cfg.training.eval_batch_size)
    logits_eval = image_logits(model, prep, bundle.eval[IMAGE].tolist(), cfg.training.eval_batch_size)
    probe = linear_probe(cfg, bundle, metric=primary if primary in CONFUSION_METRICS else "macro_f1")
    proba, base = softmax(logits_test), np.asarray(probe.test_proba, dtype=np.float64)
    boot = cfg.evaluation.bootstrap
    report = ImageEvalReport(
        labels=labels, primary_metric=primary, tuned=model_metrics(y_test, proba, labels, cfg),
        baseline=model_metrics(y_test, base, labels, cfg), uplift=paired_deltas(y_test, proba, base, cfg),
        baseline_probe={"features": "frozen model.base backbone (pooled)", "c": probe.c,
                        "eval_score": probe.eval_score, "selection_metric": probe.selection_metric},
        bootstrap={"samples": boot.samples, "confidence": boot.confidence, "seed": cfg.seed})
    if champion_dir is not None:
        _champion(cfg, bundle, report, y_test, proba, labels, champion_dir, champion_name, prep)
    cal = cfg.evaluation.calibration
    report.calibration = calibration_summary(logits_eval, y_eval, logits_test, y_test, bins=cal.bins,
                                             temperature_scaling=cal.temperature_scaling)
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / CALIBRATION_FILE, {k: report.calibration[k] for k in
                                                             ("temperature", "fitted_on", "bins", "ece", "ece_calibrated")})
    preds = {"tuned": proba.argmax(axis=1), "baseline": base.argmax(axis=1)}
    report.slices = slice_metrics(bundle.test, y_test, preds, cfg.evaluation.slices, len(labels),
                                  metrics=SLICE_METRICS, settings=SliceSettings.of(cfg))
    p_true = proba[np.arange(len(y_test)), y_test]
    wrong = [int(i) for i in np.argsort(p_true) if preds["tuned"][i] != y_test[i]][:WORST]
    report.worst = [{"image": bundle.test[IMAGE].iat[i], "label": labels[y_test[i]],
                     "predicted": labels[int(preds["tuned"][i])], "p_true": round(float(p_true[i]), 4)} for i in wrong]
    return report


def _load(model_dir, labels: list[str]):
    try:
        model, processor = load_classifier(model_dir)
    except (OSError, ValueError) as exc:
        raise EvalError(f"{model_dir}: not a loadable image classifier ({str(exc).splitlines()[0]})",
                        hint="point it at the model dir a run wrote (run_dir/model)") from None
    found = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if found != labels:
        raise EvalError(f"{model_dir}: the model predicts {found}, but the data has labels {labels}",
                        hint="evaluate it with the config (data and data.labels) it was trained with")
    return model, processor


def linear_probe(cfg, bundle, *, metric: str):
    """Logistic regression on the frozen base backbone's pooled features: what the head alone could do."""
    from tunesmith.hub import loading, resolve_model

    resolved = resolve_model(cfg.model.base, cfg.model.revision)
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        base = build_model(resolved.path, list(bundle.labels), revision=resolved.revision).eval()
        prep = Preprocess.of(load_processor(resolved.path, revision=resolved.revision), cfg.image.size)
    labels = list(bundle.labels)
    xs = {n: image_features(base, prep, getattr(bundle, n)[IMAGE].tolist(), cfg.training.eval_batch_size)
          for n in ("train", "eval", "test")}
    ys = {n: label_ids(getattr(bundle, n)["label"].tolist(), labels) for n in ("train", "eval")}
    return fit_probe(xs["train"], ys["train"], xs["eval"], ys["eval"], xs["test"], len(labels), metric=metric,
                     seed=cfg.seed)


def _champion(cfg, bundle, report, y, proba, labels, champion_dir, name, prep) -> None:
    def score():
        model, _processor = _load(champion_dir, labels)
        return softmax(image_logits(model, prep, bundle.test[IMAGE].tolist(), cfg.training.eval_batch_size))

    found = champion_on_unseen(report, champion_dir, name, bundle.test["text"].tolist(), score, unit="test images")
    if found is None:
        return
    m = found.mask
    report.champion = model_metrics(y[m], found.scored[m], labels, cfg)
    report.vs_champion = paired_deltas(y[m], proba[m], found.scored[m], cfg)
    report.champion_status = COMPARED
    note_unseen_share(report, name, m, unit="test images")
