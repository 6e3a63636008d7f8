"""The label checks of the data gates: likely label errors (cleanlab) and class imbalance (with the fix).

Both only report (label flags are candidates for review, imbalance a suggestion); `imbalance.oversample`
applies the suggested fix by repeating rows of the smaller train classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tunesmith.config import Config
from tunesmith.data import pii
from tunesmith.data.checks import label_issues_skipped
from tunesmith.data.label_issues import find_label_issues
from tunesmith.data.schema import LABEL, SOURCE, TEXT
from tunesmith.io import atomic_write_text

if TYPE_CHECKING:
    from tunesmith.data.checks import ChecksOutcome

REVIEW_FILE = "label_issues.jsonl"
SNIPPET = 160  # characters of text shown per flagged row in the report (PII redacted)


def label_checks(cfg: Config, out: ChecksOutcome, run_dir: Path | None) -> None:
    """The label data gates: likely label errors (a report artifact: only with a run dir) and class balance."""
    if run_dir is not None:
        label_issues(cfg, out, run_dir)
    else:
        label_issues_skipped(cfg, out)
    imbalance(cfg, out)


def label_issues(cfg: Config, out: ChecksOutcome, run_dir: Path | None) -> None:
    """Out-of-fold probe + cleanlab over every split (a seeded sample of at most max_rows)."""
    c = cfg.data.checks.label_issues
    if not c.enabled:
        out.findings["label_issues"] = {"enabled": False, "status": "off"}
        return
    frames = [f.assign(_split=n) for n, f in out.splits.items()]
    rows = pd.concat(frames, ignore_index=True)
    if len(rows) < c.min_rows:
        out.findings["label_issues"] = {"enabled": True, "status": "skipped", "rows_checked": 0,
                                        "skipped": f"{len(rows)} rows: fewer than data.checks.label_issues.min_rows "
                                                   f"({c.min_rows}), too few for out-of-fold estimates"}
        return
    if len(rows) > c.max_rows:
        rows = rows.sample(n=c.max_rows, random_state=cfg.seed).reset_index(drop=True)
    labels = sorted(rows[LABEL].unique().tolist()) if cfg.data.labels is None else list(cfg.data.labels)
    ids = [labels.index(v) for v in rows[LABEL]]
    texts = rows[TEXT].astype(str).tolist()
    from tunesmith.encoders import base_embedder  # torch + transformers: only when a probe runs

    embed = base_embedder(cfg) if c.features == "embeddings" else None
    found = find_label_issues(texts, ids, len(labels), features=c.features, embed=embed, folds=c.folds, seed=cfg.seed)
    finding = {"enabled": True, "status": "skipped" if found.skipped else ("review" if len(found.indices) else "pass"),
               "features": c.features, "model": "logistic regression, out-of-fold (cleanlab.filter.find_label_issues)",
               "rows_checked": len(rows), "flagged": int(len(found.indices)), "folds": found.folds,
               "flagged_share": round(len(found.indices) / max(len(rows), 1), 4), "top": [], "notes": found.notes}
    if found.skipped:
        finding["skipped"] = found.skipped
    flagged = [_flag(rows, labels, found, int(i)) for i in found.indices]
    finding["top"] = [{**f, "text": pii.redact_text(f["text"])[:SNIPPET]} for f in flagged[: c.top]]
    if c.review_file and run_dir is not None:
        lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in flagged)
        finding["review_file"] = str(atomic_write_text(Path(run_dir) / REVIEW_FILE, lines))
    out.findings["label_issues"] = finding
    if flagged:
        out.warnings.append(f"data.checks.label_issues: {len(flagged)} of {len(rows)} rows look mislabeled to a probe "
                            f"({', '.join(f['source'] for f in flagged[:3])}, ...); review them (candidates, not truth)")


def _flag(rows: pd.DataFrame, labels: list[str], found, i: int) -> dict:
    return {"source": rows[SOURCE].iat[i], "split": rows["_split"].iat[i], "given": labels[int(found.given[i])],
            "suggested": labels[int(found.suggested[i])], "given_label_probability": round(float(found.self_confidence[i]), 4),
            "text": str(rows[TEXT].iat[i])}


def imbalance(cfg: Config, out: ChecksOutcome) -> None:
    """Train class counts, the largest/smallest ratio and tiny classes, with the fix the config can switch on."""
    c = cfg.data.checks.imbalance
    counts = out.splits["train"][LABEL].value_counts()
    present = counts[counts > 0]
    ratio = float(present.max() / present.min()) if len(present) else 1.0
    tiny = {str(k): int(v) for k, v in present.items() if v < c.min_class_rows}
    imbalanced = ratio > c.max_ratio or bool(tiny)
    fixes = [k for k, on in (("training.class_weights", cfg.training.class_weights),
                              ("data.checks.imbalance.oversample", c.oversample)) if on]
    finding = {"status": "warn" if imbalanced and not fixes else ("fixed" if imbalanced else "pass"),
               "train_counts": {str(k): int(v) for k, v in counts.items()}, "ratio": round(ratio, 2),
               "max_ratio": c.max_ratio, "tiny_classes": tiny, "min_class_rows": c.min_class_rows, "fix": fixes}
    if imbalanced:
        why = []
        if ratio > c.max_ratio:
            why.append(f"the largest train class has {ratio:.1f}x the rows of the smallest (limit {c.max_ratio:g})")
        if tiny:
            why.append(f"classes with fewer than {c.min_class_rows} train rows: {tiny}")
        finding["suggestion"] = ("set training.class_weights: true (loss weighted by inverse class frequency) or "
                                 "data.checks.imbalance.oversample: true (repeat rows of the smaller classes)")
        if not fixes:
            out.warnings.append(f"data.checks.imbalance: {'; '.join(why)}; {finding['suggestion']}")
    if c.oversample and len(present) > 1:
        out.oversampled = _oversample(out, int(present.max()), cfg.seed)
        finding["oversampled_rows"] = out.oversampled
    out.findings["imbalance"] = finding


def _oversample(out: ChecksOutcome, target: int, seed: int) -> int:
    """Repeat rows of each smaller train class (seeded, with replacement) until it has `target` rows."""
    train = out.splits["train"]
    rng = np.random.default_rng(seed)
    extra = []
    for _, group in train.groupby(LABEL, sort=True):
        need = target - len(group)
        if need > 0:
            extra.append(group.iloc[rng.integers(0, len(group), size=need)])
    if extra:
        out.splits["train"] = pd.concat([train, *extra], ignore_index=True)
    return sum(len(e) for e in extra)
