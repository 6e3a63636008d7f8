"""Compare the tuned model with the current champion, only on test rows the champion never trained on.

    comparison = compare_champion(cfg, bundle.test, y_test, tuned_proba, labels, champion_dir)

A champion that exists but cannot be compared (another label set, files that do not load, too few rows it
has not seen) comes back with `status = "not comparable: <why>"`, and the gates fail its rules with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.contracts import COMPARED, NONE, NOT_COMPARABLE, not_compared_reason  # noqa: F401 (re-exported)
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

MIN_CHAMPION_ROWS = 30  # fewer shared unseen rows make vs_champion deltas noise, not evidence


@dataclass
class ChampionComparison:
    status: str  # COMPARED, or "not comparable: <reason>"
    metrics: dict | None = None  # the champion's model_metrics on the compared rows
    vs: dict[str, dict] | None = None  # tuned - champion on the compared rows, with paired-bootstrap CIs
    rows: int | None = None  # test rows compared on
    excluded: int | None = None  # test rows left out because the champion trained on them
    pred: np.ndarray | None = None  # champion's class ids over every test row; rows outside `mask` hold 0, unscored
    mask: np.ndarray | None = None  # True for the test rows it was compared on (those it did not train on)
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


@dataclass
class ChampionRows:
    """The champion's answers and which test items it never trained on (all of them when it kept no record)."""

    mask: np.ndarray
    scored: Any


def champion_on_unseen(report, champion_dir: str | Path, name: str, keys: list[str], score: Callable[[], Any], *,
                       unit: str = "test rows", min_rows: int = 1,
                       errors: tuple[type[BaseException], ...] = (EvalError, OSError, ValueError)) -> ChampionRows | None:
    """Score the champion (`score()`) and find the test items it did not train on (`keys`: their texts).

    A champion that does not load, or has too few unseen items, leaves `report.champion_status` "not comparable:
    <why>" with a note (its gate rules then fail) and returns None.
    """
    try:
        mask = unseen_mask(champion_dir, keys)
        scored = score()
    except errors as exc:
        _mark_not_comparable(report, f"{name} does not load: {str(exc).splitlines()[0]}")
        return None
    if mask is None:
        mask = np.ones(len(keys), dtype=bool)
        report.notes.append(f"{name} has no record of its training texts: compared on all {len(keys)} {unit}")
    if mask.sum() < max(min_rows, 1):
        _mark_not_comparable(report, f"{name} trained on every one of the {unit}" if not mask.any() else
                        f"only {int(mask.sum())} of {len(keys)} {unit} are unseen by {name}; a comparison needs at "
                        f"least {min_rows}")
        return None
    return ChampionRows(mask, scored)


def note_unseen_share(report, name: str, mask: np.ndarray, unit: str = "test rows", why: str = "") -> None:
    """The note saying the champion was compared on part of the test split (the part it did not train on)."""
    if not mask.all():
        report.notes.append(f"{name} compared on the {int(mask.sum())} of {len(mask)} {unit} it did not train on{why}")


def _mark_not_comparable(report, reason: str) -> None:
    report.champion_status = f"{NOT_COMPARABLE}: {reason}"
    report.notes.append(f"champion {report.champion_status}; its vs_champion.* and champion.* gate rules fail")


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
                     "per slice too")
    pred = np.zeros(len(texts), dtype=np.int64)
    pred[keep] = proba.argmax(axis=1)
    return ChampionComparison(
        status=COMPARED, metrics=model_metrics(y_test[keep], proba, labels, cfg),
        vs=paired_deltas(y_test[keep], tuned_proba[keep], proba, cfg), rows=rows, excluded=excluded,
        pred=pred, mask=keep, notes=notes)
