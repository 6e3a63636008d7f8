"""Likely label errors: out-of-fold probabilities from a cheap model, ranked by cleanlab.

The cheap model is a logistic-regression probe on frozen `model.base` embeddings (the same probe the
evaluation baseline uses) or on TF-IDF; `sklearn.model_selection.cross_val_predict` gives each row a
probability from a model that never saw it, and `cleanlab.filter.find_label_issues` ranks the rows whose
given label the model finds least likely. Flags are candidates for human review, not ground truth.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class LabelIssues:
    indices: np.ndarray  # flagged rows, most likely error first (indices into the texts given)
    given: np.ndarray  # label id per row checked
    suggested: np.ndarray  # the probe's top label per row checked
    self_confidence: np.ndarray  # out-of-fold probability of the given label, per row checked
    folds: int
    skipped: str | None = None  # why nothing was checked
    notes: list[str] = field(default_factory=list)


def probe_features(texts: list[str], features: str, embed: Embed | None) -> np.ndarray:
    if features == "tfidf":
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit_transform(texts)
    if embed is None:
        raise ValueError("features='embeddings' needs an embed function")
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(np.asarray(embed(texts), dtype=np.float64))


def find_label_issues(
    texts: Sequence[str], label_ids: Sequence[int], num_labels: int, *, features: str = "embeddings",
    embed: Embed | None = None, folds: int = 5, seed: int = 0,
) -> LabelIssues:
    """Rank likely label errors among `texts` (labels as ids 0..num_labels-1)."""
    from cleanlab.filter import find_label_issues as cleanlab_find
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.asarray(label_ids, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    counts = np.bincount(y, minlength=num_labels)
    present = counts[counts > 0]
    k = int(min(folds, present.min())) if len(present) else 0
    if len(present) < 2 or k < 2:
        why = "fewer than 2 labels" if len(present) < 2 else "a label has fewer than 2 rows"
        return LabelIssues(empty, y, y, np.ones(len(y)), 0, skipped=f"{why}: no out-of-fold probabilities")
    # cleanlab wants labels 0..K-1 with every class present: remap to the classes that occur.
    classes = np.flatnonzero(counts)
    y_local = np.searchsorted(classes, y)
    x = probe_features(list(texts), features, embed)
    clf = LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        proba = cross_val_predict(clf, x, y_local, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                                  method="predict_proba")
    ranked = cleanlab_find(labels=y_local, pred_probs=proba, return_indices_ranked_by="self_confidence")
    notes = [f"{folds} folds asked, {k} used (smallest class has {present.min()} rows)"] if k < folds else []
    return LabelIssues(np.asarray(ranked, dtype=np.int64), y, classes[proba.argmax(axis=1)],
                       proba[np.arange(len(y)), y_local], k, notes=notes)
