"""The label gates for multi-label data: likely label errors (cleanlab's multi-label filter) and label imbalance.

Label issues: one-vs-rest logistic regression on the same features as the single-label check gives out-of-fold
probabilities per label; `cleanlab.multilabel_classification.filter.find_label_issues` flags rows where any label
looks wrongly present or absent. Imbalance: rows per label in train (a row counts for each of its labels).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tunesmith.config import Config
from tunesmith.data import pii
from tunesmith.data.checks import label_issues_skipped
from tunesmith.data.schema import SOURCE, TEXT
from tunesmith.families.multilabel.rows import LABELS, label_counts, label_set, multi_hot
from tunesmith.io import atomic_write_text

if TYPE_CHECKING:
    from tunesmith.data.checks import ChecksOutcome

SNIPPET = 160
MODEL = "one-vs-rest logistic regression, out-of-fold (cleanlab.multilabel_classification.filter.find_label_issues)"


def out_of_fold_proba(x, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """P(label) per row from a one-vs-rest probe that never saw the row (labels every row has, or none has, get
    their constant)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    proba = np.tile(y.mean(axis=0), (len(y), 1)).astype(np.float64)
    for train_idx, test_idx in KFold(folds, shuffle=True, random_state=seed).split(y):
        for j in range(y.shape[1]):
            yj = y[train_idx, j]
            if yj.min() == yj.max():
                proba[test_idx, j] = yj[0]
                continue
            clf = LogisticRegression(max_iter=1000, C=1.0, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(x[train_idx], yj)
            proba[test_idx, j] = clf.predict_proba(x[test_idx])[:, 1]
    return proba


def label_checks(cfg: Config, out: ChecksOutcome, run_dir: Path | None) -> None:
    """The label data gates for label sets: likely label errors (with a run dir) and rows per label."""
    c = cfg.data.checks.label_issues
    if run_dir is None:
        label_issues_skipped(cfg, out)
    elif not c.enabled:
        out.findings["label_issues"] = {"enabled": False, "status": "off"}
    else:
        from tunesmith.encoders import base_embedder  # torch + transformers: only when a probe runs

        multilabel_label_issues(cfg, out, run_dir, base_embedder(cfg) if c.features == "embeddings" else None)
    multilabel_imbalance(cfg, out)


def multilabel_label_issues(cfg: Config, out: ChecksOutcome, run_dir: Path | None, embed) -> None:
    c = cfg.data.checks.label_issues
    rows = pd.concat([f.assign(_split=n) for n, f in out.splits.items()], ignore_index=True)
    if len(rows) < c.min_rows:
        out.findings["label_issues"] = {"enabled": True, "status": "skipped", "rows_checked": 0,
                                        "skipped": f"{len(rows)} rows: fewer than data.checks.label_issues.min_rows "
                                                   f"({c.min_rows}), too few for out-of-fold estimates"}
        return
    if len(rows) > c.max_rows:
        rows = rows.sample(n=c.max_rows, random_state=cfg.seed).reset_index(drop=True)
    labels = list(cfg.data.labels) if cfg.data.labels else label_set([rows])
    y = multi_hot(rows, labels)
    present = y.sum(axis=0) > 0
    labels, y = [lab for lab, p in zip(labels, present, strict=True) if p], y[:, present]  # cleanlab: every class seen
    from tunesmith.data.label_issues import probe_features

    texts = rows[TEXT].astype(str).tolist()
    x = probe_features(texts, c.features, embed)
    proba = out_of_fold_proba(x, y, c.folds, cfg.seed)
    from cleanlab.multilabel_classification.filter import find_label_issues

    given = [list(np.flatnonzero(r)) for r in y]
    ranked = np.asarray(find_label_issues(labels=given, pred_probs=proba, return_indices_ranked_by="self_confidence"),
                        dtype=np.int64)
    flagged = [{"source": rows[SOURCE].iat[i], "split": rows["_split"].iat[i], "given": "|".join(rows[LABELS].iat[i]),
                "suggested": "|".join(lab for lab, p in zip(labels, proba[i], strict=True) if p >= 0.5),
                "given_label_probability": round(float(np.where(y[i] > 0, proba[i], 1 - proba[i]).min()), 4),
                "text": str(rows[TEXT].iat[i])} for i in ranked]
    finding = {"enabled": True, "status": "review" if flagged else "pass", "features": c.features, "model": MODEL,
               "rows_checked": len(rows), "flagged": len(flagged), "folds": c.folds,
               "flagged_share": round(len(flagged) / max(len(rows), 1), 4),
               "top": [{**f, "text": pii.redact_text(f["text"])[:SNIPPET]} for f in flagged[: c.top]], "notes": []}
    if c.review_file and run_dir is not None:
        lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in flagged)
        finding["review_file"] = str(atomic_write_text(Path(run_dir) / "label_issues.jsonl", lines))
    out.findings["label_issues"] = finding
    if flagged:
        out.warnings.append(f"data.checks.label_issues: {len(flagged)} of {len(rows)} rows have a label set that "
                            f"looks wrong to a probe ({', '.join(f['source'] for f in flagged[:3])}, ...); review them")


def multilabel_imbalance(cfg: Config, out: ChecksOutcome) -> None:
    """Rows per label in train; the fix is BCE pos_weight (training.class_weights)."""
    c = cfg.data.checks.imbalance
    train = out.splits["train"]
    counts = label_counts(train, label_set([train]))
    present = [v for v in counts.values() if v > 0]
    ratio = max(present) / min(present) if present else 1.0
    tiny = {k: v for k, v in counts.items() if 0 < v < c.min_class_rows}
    imbalanced = ratio > c.max_ratio or bool(tiny)
    fixes = ["training.class_weights"] if cfg.training.class_weights else []
    finding = {"status": "warn" if imbalanced and not fixes else ("fixed" if imbalanced else "pass"),
               "train_counts": counts, "ratio": round(ratio, 2), "max_ratio": c.max_ratio, "tiny_classes": tiny,
               "min_class_rows": c.min_class_rows, "fix": fixes}
    if imbalanced:
        finding["suggestion"] = "set training.class_weights: true (BCE pos_weight = negatives / positives per label)"
        if not fixes:
            out.warnings.append(f"data.checks.imbalance: the most frequent label has {ratio:.1f}x the rows of the "
                                f"rarest{f'; labels with few rows: {tiny}' if tiny else ''}; {finding['suggestion']}")
    out.findings["imbalance"] = finding
