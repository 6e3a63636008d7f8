"""Evaluate a multi-label classifier on the test split against a one-vs-rest probe on frozen embeddings (and the champion).

    report = evaluate_multilabel(cfg, bundle, run_dir / "model", champion_dir=champion, out_dir=run_dir)

Each label gets its own decision threshold, chosen on the eval split (best F1 there; 0.5 when eval has no positive of
the label) and written to `out_dir/thresholds.json`; the pipeline ships it with the model and serving applies it.
Thresholds are never tuned on test. The probe baseline gets its own thresholds the same way, so the comparison is
fair. Metrics: micro/macro F1, micro precision/recall, subset accuracy, Hamming loss, per-label P/R/F1, and
per-label calibration (ECE of P(label) against the label's frequency, equal-width bins). Uplift and vs-champion are
tuned - other with a paired bootstrap over test rows.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.contracts import COMPARED, ReportBase
from tunesmith.evaluation.champion import champion_on_unseen, note_unseen_share
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.significance import IndexStat, bootstrap_delta, mean_stat
from tunesmith.io import atomic_write_json

THRESHOLDS_FILE = "thresholds.json"
GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)  # candidate thresholds per label
C_GRID = (0.01, 0.1, 1.0, 10.0)
BOOTSTRAPPED = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")


@dataclass(kw_only=True)
class MultiLabelEvalReport(ReportBase):
    per_label: dict[str, dict] = field(default_factory=dict)  # label -> precision, recall, f1, support, threshold, ece
    calibration: dict = field(default_factory=dict)  # pooled reliability bins of P(label), per-label ECE
    thresholds: dict = field(default_factory=dict)  # what thresholds.json holds
    rows: int = 0
    baseline_probe: dict = field(default_factory=dict)

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.multilabel.report import multilabel_sections

        return multilabel_sections(self)


# --- thresholds, metrics, calibration --------------------------------------------------------------------


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp, fp, fn = (y & pred).sum(), (~y & pred).sum(), (y & ~pred).sum()
    return float(2 * tp / (2 * tp + fp + fn)) if (2 * tp + fp + fn) else 1.0


def tune_thresholds(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per label, the grid threshold with the best F1 on these rows (ties: the one nearest 0.5); 0.5 for a label
    without positives here (its F1 cannot be estimated)."""
    y = np.asarray(y) > 0.5
    out = np.full(y.shape[1], 0.5)
    for j in range(y.shape[1]):
        if not y[:, j].any():
            continue
        scores = [(_f1(y[:, j], proba[:, j] >= t), -abs(t - 0.5), t) for t in GRID]
        out[j] = max(scores)[2]
    return out


def label_metrics(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> dict[str, dict]:
    y, pred = np.asarray(y) > 0.5, np.asarray(pred) > 0.5
    out = {}
    for j, label in enumerate(labels):
        tp, fp, fn = int((y[:, j] & pred[:, j]).sum()), int((~y[:, j] & pred[:, j]).sum()), int((y[:, j] & ~pred[:, j]).sum())
        out[label] = {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
                      "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 1.0, "support": int(y[:, j].sum())}
    return out


def reliability(p: np.ndarray, y: np.ndarray, bins: int) -> dict[str, list]:
    """Equal-width bins of P(label): mean predicted probability ("confidence") and the share of positives
    ("accuracy") per bin, the shape `plots.reliability_diagram` draws."""
    from tunesmith.evaluation.calibration import bin_index

    p, y = np.asarray(p, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    k = bin_index(p, bins)
    count = np.bincount(k, minlength=bins)
    conf = np.bincount(k, weights=p, minlength=bins)
    pos = np.bincount(k, weights=y, minlength=bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {"lower": edges[:-1].tolist(), "upper": edges[1:].tolist(),
            "confidence": [float(s / c) if c else None for s, c in zip(conf, count, strict=True)],
            "accuracy": [float(s / c) if c else None for s, c in zip(pos, count, strict=True)], "count": count.tolist()}


def label_ece(p: np.ndarray, y: np.ndarray, bins: int) -> float:
    from tunesmith.evaluation.calibration import ece_from_bins

    return ece_from_bins(reliability(p, y, bins))


def scores(y: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, bins: int) -> dict[str, float]:
    from tunesmith.families.multilabel.model import multilabel_scores

    out = multilabel_scores(y, proba >= thresholds[None, :])
    out["ece"] = float(np.mean([label_ece(proba[:, j], y[:, j], bins) for j in range(y.shape[1])]))
    return out


def metric_stats(y: np.ndarray, pred: np.ndarray) -> dict[str, IndexStat]:
    """Resamplable micro/macro F1, subset accuracy and Hamming loss: per-row counts, summed per resample."""
    y, pred = np.asarray(y) > 0.5, np.asarray(pred) > 0.5
    tp, fp, fn = (y & pred).astype(np.float64), (~y & pred).astype(np.float64), (y & ~pred).astype(np.float64)
    row_tp, row_err = tp.sum(1), fp.sum(1) + fn.sum(1)

    def micro(idx: np.ndarray) -> np.ndarray:
        t, e = row_tp[idx].sum(1), row_err[idx].sum(1)
        return np.where(2 * t + e > 0, 2 * t / np.maximum(2 * t + e, 1e-12), 1.0)

    def macro(idx: np.ndarray) -> np.ndarray:
        t, p_, n_ = tp[idx].sum(1), fp[idx].sum(1), fn[idx].sum(1)  # (B, L)
        d = 2 * t + p_ + n_
        return np.where(d > 0, 2 * t / np.maximum(d, 1e-12), 1.0).mean(1)

    return {"micro_f1": micro, "macro_f1": macro, "subset_accuracy": mean_stat((y == pred).all(1)),
            "hamming_loss": mean_stat((y != pred).mean(1))}


def deltas(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, cfg) -> dict[str, dict]:
    boot = cfg.evaluation.bootstrap
    sa, sb = metric_stats(y, pred_a), metric_stats(y, pred_b)
    return {m: bootstrap_delta(len(y), sa[m], sb[m], samples=boot.samples, confidence=boot.confidence, seed=cfg.seed)
            for m in BOOTSTRAPPED}


# --- models ----------------------------------------------------------------------------------------------


def probe(cfg, bundle, y_train: np.ndarray, y_eval: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """(eval, test) P(label) of one-vs-rest logistic regression on the frozen base's mean-pooled embeddings;
    C chosen on eval micro-F1 at 0.5."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import StandardScaler

    from tunesmith.encoders import split_embeddings
    from tunesmith.families.multilabel.model import multilabel_scores

    xs = split_embeddings(cfg, bundle)
    scaler = StandardScaler().fit(xs[0])
    xs = [scaler.transform(v) if len(v) else v for v in xs]
    best = None
    for c in C_GRID if len(y_eval) else (1.0,):
        clf = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000, random_state=cfg.seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning, and "label not present" for constant labels
            clf.fit(xs[0], y_train.astype(int))
        p_eval = clf.predict_proba(xs[1]) if len(xs[1]) else np.zeros((0, y_train.shape[1]))
        score = multilabel_scores(y_eval, p_eval >= 0.5)["micro_f1"] if len(y_eval) else float("nan")
        if best is None or score > best[0]:
            best = (score, c, clf, p_eval)
    score, c, clf, p_eval = best
    info = {"method": "one-vs-rest logistic regression on mean-pooled frozen embeddings", "C": c,
            "eval_micro_f1_at_0.5": score if len(y_eval) else None, "thresholds": "tuned on eval, like the model's"}
    p_test = clf.predict_proba(xs[2]) if len(xs[2]) else np.zeros((0, y_train.shape[1]))  # eval-only callers
    return p_eval, p_test, info


def load_multilabel(model_dir: str | Path, cfg, key: str):
    """A saved multi-label classifier and its tokenizer; EvalError when it is not one."""
    from tunesmith.evaluation.scoring import load_classifier

    model, tokenizer = load_classifier(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    if model.config.problem_type != "multi_label_classification":
        raise EvalError(f"{model_dir}: problem_type is {model.config.problem_type!r}, not multi_label_classification "
                        f"({key})", hint="evaluate it with the config (data.multi_label) it was trained with")
    return model, tokenizer


def model_proba(model, tokenizer, frame, cfg, labels: list[str], model_dir) -> np.ndarray:
    from tunesmith.evaluation.scoring import label_order, model_labels
    from tunesmith.families.multilabel.model import predict_proba

    order = label_order(model, labels)
    if order is None:
        raise EvalError(f"{model_dir}: the model predicts {model_labels(model)}, but the data has labels {labels}",
                        hint="evaluate it with the config (data and data.labels) it was trained with")
    p = predict_proba(model, tokenizer, frame["text"].astype(str).tolist(), max_length=cfg.model.max_length,
                      batch_size=cfg.training.eval_batch_size)
    return p[:, order]


def read_thresholds(model_dir: str | Path, labels: list[str]) -> np.ndarray:
    """A model dir's thresholds.json in `labels` order (0.5 where it has none, or when there is no file)."""
    path = Path(model_dir) / THRESHOLDS_FILE
    known = json.loads(path.read_text())["thresholds"] if path.is_file() else {}
    return np.array([float(known.get(label, 0.5)) for label in labels])


def evaluate_multilabel(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
                        champion_name: str = "champion", out_dir: str | Path | None = None) -> MultiLabelEvalReport:
    """Score the tuned model and the probe (and the champion) on `bundle.test`, thresholds tuned on `bundle.eval`.

    Raises:
        EvalError: no test rows, or a model dir that is not a multi-label classifier with the data's labels.
    """
    from tunesmith.evaluation.gates import primary_name
    from tunesmith.families.multilabel.rows import multi_hot

    labels, test = list(bundle.labels), bundle.test
    if len(test) == 0:
        raise EvalError("the test split is empty: nothing to evaluate", hint="raise data.split.test or set data.test")
    y_train, y_eval, y_test = (multi_hot(f, labels) for f in (bundle.train, bundle.eval, test))
    model, tokenizer = load_multilabel(model_dir, cfg, "model_dir")
    p_eval, p_test = (model_proba(model, tokenizer, f, cfg, labels, model_dir) for f in (bundle.eval, test))
    b_eval, b_test, probe_info = probe(cfg, bundle, y_train, y_eval)
    tune = cfg.evaluation.tune_thresholds and len(bundle.eval) > 0
    thr = tune_thresholds(p_eval, y_eval) if tune else np.full(len(labels), 0.5)
    b_thr = tune_thresholds(b_eval, y_eval) if tune else np.full(len(labels), 0.5)
    bins, boot = cfg.evaluation.calibration.bins, cfg.evaluation.bootstrap
    primary = primary_name(cfg.training.metric)
    pred, b_pred = p_test >= thr[None, :], b_test >= b_thr[None, :]
    per_label = label_metrics(y_test, pred, labels)
    base_f1 = label_metrics(y_test, b_pred, labels)
    for j, label in enumerate(labels):
        per_label[label].update(threshold=float(thr[j]), ece=label_ece(p_test[:, j], y_test[:, j], bins),
                                baseline_f1=base_f1[label]["f1"], eval_support=int(y_eval[:, j].sum()))
    thresholds = {"thresholds": {label: float(t) for label, t in zip(labels, thr, strict=True)},
                  "fitted_on": "eval" if tune else "none (0.5)", "objective": "f1 per label", "default": 0.5}
    report = MultiLabelEvalReport(
        primary_metric="micro_f1" if primary in ("log_loss", "loss") else primary, labels=labels,
        tuned=scores(y_test, p_test, thr, bins), baseline=scores(y_test, b_test, b_thr, bins),
        uplift=deltas(y_test, pred, b_pred, cfg), per_label=per_label, thresholds=thresholds, rows=len(test),
        calibration={"bins": bins, "reliability": reliability(p_test, y_test, bins),
                     "ece_per_label": {label: per_label[label]["ece"] for label in labels}},
        baseline_probe={**probe_info, "thresholds_tuned": [float(t) for t in b_thr]},
        bootstrap={"samples": boot.samples, "confidence": boot.confidence, "seed": cfg.seed},
    )
    if not tune:
        report.notes.append("thresholds not tuned (evaluation.tune_thresholds off or no eval rows): 0.5 for every label")
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / THRESHOLDS_FILE, thresholds)
    if champion_dir is not None:
        _compare_champion(report, cfg, champion_dir, champion_name, test, y_test, pred, labels)
    return report


def _compare_champion(report, cfg, champion_dir, name, test, y_test, pred, labels) -> None:
    """The champion as it is served (its own thresholds) on the test rows it never trained on."""
    def score():
        model, tokenizer = load_multilabel(champion_dir, cfg, "champion")
        return model_proba(model, tokenizer, test, cfg, labels, champion_dir), read_thresholds(champion_dir, labels)

    found = champion_on_unseen(report, champion_dir, name, test["text"].astype(str).tolist(), score,
                               errors=(EvalError, OSError, ValueError, KeyError))
    if found is None:
        return
    (p, thr), mask = found.scored, found.mask
    report.champion = scores(y_test[mask], p[mask], thr, cfg.evaluation.calibration.bins)
    report.champion_status = COMPARED
    report.vs_champion = deltas(y_test[mask], pred[mask], (p >= thr[None, :])[mask], cfg)
    note_unseen_share(report, name, mask)


evaluate = evaluate_multilabel  # the family's evaluation entry (tunesmith.families.common.family)


def probe_eval(cfg, bundle) -> float | None:
    """The one-vs-rest probe's training.metric on the eval split at threshold 0.5 (what training's eval reports);
    None for loss or without an eval split. `bundle` may lack its test split."""
    from tunesmith.families.multilabel.model import multilabel_scores
    from tunesmith.families.multilabel.rows import multi_hot

    metric = cfg.training.metric
    if metric not in ("micro_f1", "macro_f1", "subset_accuracy") or len(bundle.eval) == 0:
        return None
    labels = list(bundle.labels)
    y_train, y_eval = multi_hot(bundle.train, labels), multi_hot(bundle.eval, labels)
    p_eval, _, _ = probe(cfg, bundle, y_train, y_eval)
    return float(multilabel_scores(y_eval, p_eval >= 0.5)[metric])
