"""Seeded, stratified subsampling and train/eval/test splits.

Rows are ranked within their class by a seeded hash of their content (see fingerprint.split_keys), and
each held-out part takes the first rows of each class in that ranking. So a split depends on the seed
and the rows, not on file order or format, and every class with enough rows appears in every part.
Splits hash the normalized text alone and move rows with the same text together, so a text is never
both trained on and tested on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from tunesmith.data.errors import DataError, quoted
from tunesmith.data.schema import LABEL

MIN_PER_CLASS_IN_SAMPLE = 3  # what a class needs to appear in train, eval and test
# A held-out part whose share of the rows is off from its configured share by more than this factor, or by
# more than this much absolute, is reported (shares count distinct texts, so repeated texts skew them).
SHARE_DRIFT_RATIO = 2.0
SHARE_DRIFT_ABS = 0.15
_REPEATS_HINT = (
    "deduplicate the data (or drop most copies of the repeated texts), or give data.train/data.eval/data.test "
    "to choose the splits yourself"
)


def subsample(rows: pd.DataFrame, keys: np.ndarray, n: int, *, stratify: bool) -> tuple[pd.DataFrame, list[str]]:
    """Keep `n` rows, each class in proportion, but at least a few rows of every class (seeded by `keys`)."""
    if n >= len(rows):
        return rows, []
    codes, classes, sizes = _classes(rows, stratify)
    floor = np.minimum(sizes, MIN_PER_CLASS_IN_SAMPLE) if stratify else np.zeros_like(sizes)
    keep = _take(sizes, n, floor=floor, cap=sizes)
    warnings = []
    if keep.sum() > n:
        warnings.append(f"data.max_rows: kept {keep.sum()} rows, not {n}, to keep {MIN_PER_CLASS_IN_SAMPLE} rows of every class")
    rank = _ranks(codes, keys)
    return rows[rank < keep[codes]], warnings


def carve(
    rows: pd.DataFrame, keys: np.ndarray, groups: np.ndarray, shares: Mapping[str, float], *, stratify: bool
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Split `rows` into "train" plus one part per share (a share of all of `rows`), class by class.

    Rows with the same group code (the same normalized text) move together, so a text never lands in two
    parts whatever its labels or slice values: the unit that is split is the group, its class is the group's
    most common label (ties: the first in sorted order) and its key is the (shared) key of its rows. Shares
    therefore count distinct texts, which is the row count when no text repeats.

    When texts repeat a lot, the row shares can drift far from `shares`: a warning names each part whose
    row share is off by more than SHARE_DRIFT_RATIO times (or SHARE_DRIFT_ABS), and a DataError is raised
    when train ends up with fewer rows than the held-out parts together though `shares` gave it more.
    """
    first = np.unique(groups, return_index=True)[1]
    units = pd.DataFrame({LABEL: _group_labels(rows[LABEL], groups)})
    codes, classes, sizes = _classes(units, stratify)
    totals = {name: round(share * len(units)) for name, share in shares.items()}
    row_part = _carve_units(codes, sizes, keys[first], totals)[groups]
    parts = {name: rows[row_part == i + 1] for i, name in enumerate(shares)}
    parts["train"] = rows[row_part == 0]
    warnings = _check_row_shares(row_part, groups, shares)
    need = len(shares) + 1
    if stratify and (sizes < need).any():
        small = [f"{c} ({n})" for c, n in zip(classes, sizes, strict=True) if n < need]
        warnings.append(
            f"classes with fewer than {need} distinct texts stay in train only, so {'/'.join(shares)} cannot measure them: "
            f"{quoted(small)}"
        )
    return parts, warnings


def _check_row_shares(row_part: np.ndarray, groups: np.ndarray, shares: Mapping[str, float]) -> list[str]:
    """Warnings for held-out parts whose row share drifted from the configured one because texts repeat.

    `row_part` is each row's part (0 for train, i + 1 for the i-th of `shares`), `groups` its text's code.

    Raises:
        DataError: keyed `data.split` when train has fewer rows than the held-out parts together, though
        the configured shares leave train the larger part.
    """
    n_rows, n_texts = len(groups), len(np.unique(groups))
    if n_texts >= n_rows:
        return []  # no text repeats: a part's row share is its share of texts
    why = f"{n_rows} rows are only {n_texts} distinct texts; shares count texts, and each text's copies stay in one split"
    train, held = int((row_part == 0).sum()), int((row_part > 0).sum())
    if train < held and 1 - sum(shares.values()) >= sum(shares.values()):
        planned = ", ".join(f"{name} {share:g}" for name, share in shares.items())
        raise DataError(
            "data.split",
            f"train gets only {train} of {n_rows} rows, fewer than {' + '.join(shares)} together ({held} rows; "
            f"configured {planned}) because of many repeated texts: {why}",
            _REPEATS_HINT,
        )
    warnings = []
    for i, (name, share) in enumerate(shares.items()):
        mine = row_part == i + 1
        realised = mine.sum() / n_rows
        off = max(realised / share, share / realised) if realised else math.inf
        if off > SHARE_DRIFT_RATIO or abs(realised - share) > SHARE_DRIFT_ABS:
            warnings.append(
                f"data.split.{name}: {name} got {mine.sum()} of {n_rows} rows ({len(np.unique(groups[mine]))} distinct "
                f"texts), a row share of {realised:.2f} where {share:g} is configured; the likely cause is many "
                f"repeated texts ({why}); {_REPEATS_HINT}"
            )
    return warnings


def _carve_units(codes: np.ndarray, sizes: np.ndarray, keys: np.ndarray, totals: Mapping[str, int]) -> np.ndarray:
    """Part per unit: 0 for train, i + 1 for the i-th held-out part of `totals` (about that many units)."""
    need = len(totals) + 1  # one unit for train and one for each held-out part
    eligible = sizes >= need
    remaining = sizes.copy()
    rank = _ranks(codes, keys)
    part = np.zeros(len(codes), dtype=np.int64)
    start = np.zeros_like(sizes)
    for i, (name, total) in enumerate(totals.items()):
        later = len(totals) - i  # units to leave: one per later part, plus one for train
        cap = np.where(eligible, remaining - later, 0)
        counts = _take(np.where(eligible, remaining, 0), total, floor=eligible.astype(int), cap=cap)
        stop = start + counts
        taken = (rank >= start[codes]) & (rank < stop[codes])
        if not taken.any():
            raise DataError(
                "data.split", f"too few rows ({len(codes)} distinct texts) to hold out a {name} split",
                f"add rows or raise data.split.{name}",
            )
        part[taken] = i + 1
        start, remaining = stop, remaining - counts
    return part


def _group_labels(labels: pd.Series, groups: np.ndarray) -> np.ndarray:
    """Per group code: its most common label, ties broken by the sorted order (so row order does not matter)."""
    counts = pd.DataFrame({"g": groups, "label": labels.to_numpy()}).value_counts().rename("n").reset_index()
    best = counts.sort_values(["g", "n", "label"], ascending=[True, False, True]).drop_duplicates("g")
    return best["label"].to_numpy()


def _classes(rows: pd.DataFrame, stratify: bool) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Class code per row, the sorted class names and their sizes; one class for all rows without stratify."""
    if not stratify:
        return np.zeros(len(rows), dtype=np.int64), ["(all)"], np.array([len(rows)])
    codes, classes = pd.factorize(rows[LABEL], sort=True)
    return codes.astype(np.int64), [str(c) for c in classes], np.bincount(codes, minlength=len(classes))


def _ranks(codes: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Each row's position within its class when the class is ordered by key (ties by row position)."""
    n = len(codes)
    order = np.lexsort((np.arange(n), keys, codes))
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]) if n else np.array([], dtype=int)
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - first
    return rank


def _take(sizes: np.ndarray, total: int, *, floor: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Per-class counts near `total` in proportion to `sizes`, each within [floor, cap].

    Cumulative rounding makes the proportional counts sum to `total` exactly; classes lifted to their floor
    take the rows back from the classes with the most to spare.
    """
    if sizes.sum() == 0:
        return np.zeros_like(sizes)
    cumulative = np.round(np.cumsum(sizes) * (total / sizes.sum()))
    counts = np.diff(cumulative, prepend=0).astype(np.int64)
    counts = np.minimum(np.maximum(counts, floor), cap)
    for _ in range(max(0, int(counts.sum()) - total)):
        spare = counts - floor
        i = int(np.argmax(spare))
        if spare[i] <= 0:
            break
        counts[i] -= 1
    return counts
