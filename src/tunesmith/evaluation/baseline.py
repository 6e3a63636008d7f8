"""The linear-probe baseline: logistic regression on the frozen base model's mean-pooled embeddings.

Fine-tuning must beat what a cheap probe on the same base model already gets; the probe is measured on
the same test split as the tuned model. One embedding pass covers train + eval + test.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from tunesmith.encoders import split_embeddings
from tunesmith.evaluation.metrics import confusion_counts, confusion_scores, label_ids

C_GRID = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strength, chosen on the eval split


@dataclass
class LinearProbe:
    test_proba: np.ndarray  # (n_test, num_labels), columns in bundle.labels order
    c: float | None  # chosen regularisation; None when the probe fell back to class priors
    eval_score: float | None  # the selection metric on eval at the chosen C
    selection_metric: str

    def to_dict(self) -> dict:
        return {"method": "logistic regression on mean-pooled frozen embeddings", "C": self.c,
                "eval_score": self.eval_score, "selection_metric": self.selection_metric}


def _full_proba(clf: LogisticRegression, x: np.ndarray, num_labels: int) -> np.ndarray:
    # Classes absent from train get probability 0; the rest land in their own column.
    proba = np.zeros((len(x), num_labels))
    proba[:, clf.classes_] = clf.predict_proba(x)
    return proba


def fit_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray, x_test: np.ndarray,
    num_labels: int, *, metric: str = "macro_f1", seed: int = 0,
) -> LinearProbe:
    """Fit one logistic regression per C on train, keep the best on eval, return its test probabilities."""
    if len(np.unique(y_train)) < 2:  # nothing to separate: predict the training prior
        prior = np.bincount(y_train, minlength=num_labels) / max(len(y_train), 1)
        return LinearProbe(np.tile(prior, (len(x_test), 1)), None, None, metric)
    scaler = StandardScaler().fit(x_train)
    x_train, x_eval, x_test = (scaler.transform(x) if len(x) else x for x in (x_train, x_eval, x_test))
    best: tuple[float, float, LogisticRegression] | None = None
    for c in C_GRID if len(y_eval) else (1.0,):  # no eval split: sklearn's default C
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x_train, y_train)
        score = float("nan")
        if len(y_eval):
            pred = _full_proba(clf, x_eval, num_labels).argmax(axis=1)
            score = confusion_scores(confusion_counts(y_eval, pred, num_labels))[metric]
        if best is None or score > best[0]:  # ties keep the stronger regularisation
            best = (score, c, clf)
    score, c, clf = best
    test_proba = _full_proba(clf, x_test, num_labels) if len(x_test) else np.zeros((0, num_labels))  # eval-only use
    return LinearProbe(test_proba, c, score if len(y_eval) else None, metric)


def linear_probe(cfg, bundle, *, metric: str = "macro_f1") -> LinearProbe:
    """The baseline for `cfg.model.base` on `bundle`: embeds train, eval and test once, then fits the probe."""
    xs = split_embeddings(cfg, bundle)
    ys = [label_ids(f["label"].tolist(), bundle.labels) for f in (bundle.train, bundle.eval, bundle.test)]
    return fit_probe(xs[0], ys[0], xs[1], ys[1], xs[2], len(bundle.labels), metric=metric, seed=cfg.seed)
