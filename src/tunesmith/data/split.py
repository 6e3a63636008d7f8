"""Seeded, stratified subsampling and train/eval/test splits.

Rows are ranked within their class by a seeded hash of their content (see fingerprint.split_keys), and
each held-out part takes the first rows of each class in that ranking. So a split depends on the seed
and the rows, not on file order or format, and every class with enough rows appears in every part.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from tunesmith.data.errors import DataError, quoted
from tunesmith.data.schema import LABEL

MIN_PER_CLASS_IN_SAMPLE = 3  # what a class needs to appear in train, eval and test


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
    rows: pd.DataFrame, keys: np.ndarray, shares: Mapping[str, float], *, stratify: bool
) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Split `rows` into "train" plus one part per share (a share of all of `rows`), class by class."""
    codes, classes, sizes = _classes(rows, stratify)
    need = len(shares) + 1  # one row for train and one for each held-out part
    eligible = sizes >= need
    remaining = sizes.copy()
    rank = _ranks(codes, keys)
    parts: dict[str, pd.DataFrame] = {}
    start = np.zeros_like(sizes)
    for i, (name, share) in enumerate(shares.items()):
        later = len(shares) - i  # rows to leave: one per later part, plus one for train
        cap = np.where(eligible, remaining - later, 0)
        counts = _take(np.where(eligible, remaining, 0), round(share * len(rows)), floor=eligible.astype(int), cap=cap)
        stop = start + counts
        parts[name] = rows[(rank >= start[codes]) & (rank < stop[codes])]
        if parts[name].empty:
            raise DataError("data.split", f"too few rows ({len(rows)}) to hold out a {name} split", f"add rows or raise data.split.{name}")
        start, remaining = stop, remaining - counts
    parts["train"] = rows[rank >= start[codes]]
    warnings = []
    if stratify and not eligible.all():
        small = [f"{c} ({n})" for c, n in zip(classes, sizes, strict=True) if n < need]
        warnings.append(
            f"classes with fewer than {need} rows stay in train only, so {'/'.join(shares)} cannot measure them: {quoted(small)}"
        )
    return parts, warnings


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
