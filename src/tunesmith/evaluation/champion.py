"""Compare the tuned model with the current champion, only on test rows the champion never trained on.

    comparison = compare_champion(cfg, bundle.test, y_test, tuned_proba, labels, champion_dir)

A champion that exists but cannot be compared (another label set, files that do not load, too few rows it
has not seen) comes back with `status = "not comparable: <why>"`, and the gates fail its rules with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.evaluation.calibration import softmax
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.scoring import (
    frame_logits,
    label_order,
    load_classifier,
    model_labels,
    model_metrics,
    paired_deltas,
)
from tunesmith.provenance import SEEN_TEXTS_FILE, read_seen_texts, text_hashes

NONE, COMPARED, NOT_COMPARABLE = "none", "compared", "not comparable"
MIN_CHAMPION_ROWS = 30  # fewer shared unseen rows make vs_champion deltas noise, not evidence


def not_compared_reason(status: str) -> str:
    """Why an existing champion was not compared, from a report's `champion_status` ("" when it was, or none exists)."""
    prefix = f"{NOT_COMPARABLE}: "
    return status.removeprefix(prefix) if status.startswith(prefix) else ""


@dataclass
class ChampionComparison:
    status: str  # COMPARED, or "not comparable: <reason>"
    metrics: dict | None = None  # the champion's model_metrics on the compared rows
    vs: dict[str, dict] | None = None  # tuned - champion on the compared rows, with paired-bootstrap CIs
    rows: int | None = None  # test rows compared on
    excluded: int | None = None  # test rows left out because the champion trained on them
    pred: np.ndarray | None = None  # champion's class ids over every test row; None when rows were left out
    notes: list[str] = field(default_factory=list)


def _not_comparable(reason: str, **kw) -> ChampionComparison:
    return ChampionComparison(status=f"{NOT_COMPARABLE}: {reason}", **kw)


def unseen_mask(champion_dir: str | Path, texts: list[str]) -> np.ndarray | None:
    """True for each text the champion's `seen_texts.npy` does not list; None when it has no such file.

    Raises:
        ValueError: the file exists but cannot be read.
    """
    seen = read_seen_texts(champion_dir)
    if seen is None:
        return None
    return np.fromiter((h not in seen for h in text_hashes(texts).tolist()), dtype=bool, count=len(texts))


def compare_champion(cfg, test, y_test: np.ndarray, tuned_proba: np.ndarray, labels: list[str],
                     champion_dir: str | Path, *, name: str = "champion") -> ChampionComparison:
    """Score the champion in `champion_dir` against the tuned model on the test rows it did not train on.

    Args:
        cfg: the run's Config.
        test: the test split (`text` column), row-aligned with `y_test` and `tuned_proba`.
        y_test: class ids of the test rows.
        tuned_proba: the tuned model's test probabilities, columns in `labels` order.
        labels: the data's label set.
        champion_dir: the champion's model dir.
        name: how notes name the champion (e.g. "champion v3").
    """
    try:
        model, tokenizer = load_classifier(champion_dir, trust_remote_code=cfg.model.trust_remote_code)
    except EvalError as exc:
        return _not_comparable(f"{name} does not load: {str(exc).splitlines()[0]}")  # the message names the path
    order = label_order(model, labels)
    if order is None:
        return _not_comparable(f"{name} has labels {model_labels(model)}, not this run's {labels}")
    texts = test["text"].astype(str).tolist()
    try:
        keep = unseen_mask(champion_dir, texts)
    except ValueError as exc:
        return _not_comparable(f"cannot tell which test rows {name} trained on: {exc}")
    notes = []
    if keep is None:
        keep = np.ones(len(texts), dtype=bool)
        notes.append(f"{name} has no {SEEN_TEXTS_FILE}: compared on all {len(texts)} test rows, "
                     "some of which it may have trained on")
    rows, excluded = int(keep.sum()), int((~keep).sum())
    if rows < MIN_CHAMPION_ROWS:
        return _not_comparable(
            f"only {rows} of {len(texts)} test rows are unseen by {name} ({excluded} were in its train/eval data); "
            f"a comparison needs at least {MIN_CHAMPION_ROWS}", rows=rows, excluded=excluded)
    proba = softmax(frame_logits(model, tokenizer, test[keep], cfg, order))
    if excluded:
        notes.append(f"{name} compared on the {rows} test rows it did not train on ({excluded} left out); "
                     "it is not shown per slice")
    return ChampionComparison(
        status=COMPARED, metrics=model_metrics(y_test[keep], proba, labels, cfg),
        vs=paired_deltas(y_test[keep], tuned_proba[keep], proba, cfg), rows=rows, excluded=excluded,
        pred=proba.argmax(axis=1) if not excluded else None, notes=notes)
