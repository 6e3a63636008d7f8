"""Metrics per slice and the gaps between slices, with bootstrap CIs: what the `slices.*` gate rules read.

    report.slices = slice_report(bundle.test, cfg.evaluation.slices, {"tuned": stats, "baseline": probe_stats},
                                 metrics=("accuracy", "macro_f1"), settings=SliceSettings.of(cfg), champion=champ)
    flat.update(slice_flat(report.slices))    # slices.max_gap.macro_f1, slices.genre.max_gap.macro_f1, ...

A family hands in, per model, a resamplable statistic per metric over the test rows (`significance.IndexStat`), so
this module never knows what a prediction is. Per slice value: each model's metric and the tuned model's CI
(resampling the slice's rows); with a champion, tuned - champion on the slice's rows the champion never trained on
(paired bootstrap). Per column: the gap between the best and the worst slice on each metric, its CI from resampling
within every slice at once, and the worst slice vs the champion. Slices with fewer than `evaluation.slice_min_rows`
rows are reported but left out of the gap and of the worst-slice comparison, with a note: their scores are noise.

`text_length` is built in: test texts bucketed into short / medium / long by the tertiles of their
whitespace-token counts, so "does it fail on long tickets?" needs no extra column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tunesmith.evaluation.metrics import higher_is_better
from tunesmith.evaluation.significance import (
    IndexStat,
    bootstrap_delta,
    confusion_metric,
    percentile_ci,
    stratified_bootstrap,
)

TEXT_LENGTH = "text_length"
MIN_SLICE_N = 10  # evaluation.slice_min_rows' default: smaller slices are reported, not compared
MISSING = "(missing)"
GAP, WORST = "max_gap", "worst_vs_champion"
_COLUMN_KEY = re.compile(r"[A-Za-z_][\w.]*")  # a column a gate rule can name (slices.<column>.max_gap.<m>)


@dataclass(frozen=True)
class SliceSettings:
    """How slices are compared: the smallest slice that counts, and the bootstrap's resamples, level and seed."""

    min_rows: int = MIN_SLICE_N
    samples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    @classmethod
    def of(cls, cfg) -> SliceSettings:
        e = cfg.evaluation
        return cls(min_rows=e.slice_min_rows, samples=e.bootstrap.samples, confidence=e.bootstrap.confidence,
                   seed=cfg.seed)


@dataclass(frozen=True)
class SliceChampion:
    """The champion's per-metric statistics over test-row indices, and the rows it may be scored on."""

    stats: Mapping[str, IndexStat]
    rows: np.ndarray  # bool per test row: True where the champion never trained on the row


def text_length_buckets(texts: Sequence[str]) -> tuple[np.ndarray, dict[str, str]]:
    """Each text's bucket (short / medium / long by tertiles of token count) and each bucket's token range."""
    counts = np.array([len(str(t).split()) for t in texts])
    if len(counts) == 0:
        return np.array([], dtype=object), {}
    q1, q2 = np.quantile(counts, [1 / 3, 2 / 3])
    buckets = np.where(counts <= q1, "short", np.where(counts <= q2, "medium", "long")).astype(object)
    ranges = {}
    for name in ("short", "medium", "long"):
        sel = counts[buckets == name]
        if len(sel):
            ranges[name] = f"{sel.min()}-{sel.max()} tokens"
    return buckets, ranges


def label_stats(y: np.ndarray, pred: np.ndarray, metrics: Sequence[str], num_classes: int) -> dict[str, IndexStat]:
    """Resamplable confusion metrics (accuracy, macro_f1, ...) of class-id predictions over test-row indices."""
    y, pred = np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    fns = {m: confusion_metric(m, num_classes) for m in metrics}
    return {m: (lambda idx, fn=fn: fn(y[idx], pred[idx])) for m, fn in fns.items()}


def _column_values(test: pd.DataFrame, column: str) -> tuple[np.ndarray, dict[str, str]]:
    if column == TEXT_LENGTH and column not in test.columns:
        return text_length_buckets(test["text"].tolist())
    values = test[column].astype(object).where(test[column].notna(), MISSING)
    return values.map(str).to_numpy(dtype=object), {}


def _point(stat: IndexStat, rows: np.ndarray) -> float:
    return float(stat(rows[None])[0]) if len(rows) else float("nan")


def _listing(items: list[tuple[str, int]]) -> str:
    return ", ".join(f"{value} ({n} rows)" for value, n in items)


def slice_report(test: pd.DataFrame, columns: Sequence[str], stats: Mapping[str, Mapping[str, IndexStat]], *,
                 metrics: Sequence[str], settings: SliceSettings = SliceSettings(),
                 champion: SliceChampion | None = None) -> dict[str, dict]:
    """Per-slice metrics, CIs, gaps and the comparison with the champion, for each slice column.

    Args:
        test: the test split (a `text` column plus slice columns), row-aligned with the statistics.
        columns: slice columns; `text_length` is computed from `text` when the split has no such column.
        stats: model name -> metric -> statistic over test-row indices; "tuned" is required (gaps and CIs are
            the tuned model's), others (the baseline) are reported per slice.
        metrics: the metrics to report per slice (each model's stats has them).
        settings: the smallest slice compared, and the bootstrap.
        champion: the champion's statistics and the rows it never trained on; None without a champion.

    Returns:
        {column: {"values": [{value, n, small, <model>: {metric: value}, ci: {metric: [low, high]},
        champion_rows, champion: {...}, vs_champion: {metric: {delta, ci_low, ci_high, p_value}}}],
        "min_rows", "gap": {metric: {gap, ci_low, ci_high, best, worst, slices}},
        "worst_vs_champion": {metric: {delta, ci_low, ci_high, p_value, slice, rows}}, "notes": [...],
        "ranges": {...} (text_length only)}}; a column absent from the split has only "values": [] and "error".
    """
    out: dict[str, dict] = {}
    for column in columns:
        if column != TEXT_LENGTH and column not in test.columns:
            out[column] = {"values": [], "error": f"column {column!r} is not in the test split"}
            continue
        values, ranges = _column_values(test, column)
        out[column] = _column_report(values, stats, metrics, settings, champion)
        if ranges:
            out[column]["ranges"] = ranges
    return out


def _groups(values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(value, row indices) per slice value: length buckets in their natural order, others largest first."""
    if not len(values):
        return []
    uniq, counts = np.unique(values, return_counts=True)
    order = {"short": 0, "medium": 1, "long": 2} if set(uniq) <= {"short", "medium", "long"} else {}
    ranked = sorted(zip(uniq, counts, strict=True), key=lambda vc: (order.get(vc[0], 3), -vc[1], str(vc[0])))
    return [(str(value), np.flatnonzero(values == value)) for value, _ in ranked]


def _column_report(values: np.ndarray, stats: Mapping[str, Mapping[str, IndexStat]], metrics: Sequence[str],
                   s: SliceSettings, champion: SliceChampion | None) -> dict:
    groups = _groups(values)
    rows = [{"value": value, "n": len(idx), "small": bool(len(idx) < s.min_rows)} for value, idx in groups]
    for row, (_, idx) in zip(rows, groups, strict=True):
        for model, model_stats in stats.items():
            row[model] = {m: _point(model_stats[m], idx) for m in metrics}
    out: dict = {"values": rows, "min_rows": s.min_rows, "gap": {}, "notes": []}
    counted = [i for i, row in enumerate(rows) if not row["small"]]
    small = [(row["value"], row["n"]) for row in rows if row["small"]]
    if small:
        out["notes"].append(f"{_listing(small)}: fewer than {s.min_rows} rows (evaluation.slice_min_rows); "
                            "reported, left out of the gap")
    if len(counted) < 2 and groups:
        out["notes"].append(f"no gap: fewer than two slices have {s.min_rows} rows or more")
    for m in metrics:
        draws = stratified_bootstrap([idx for _, idx in groups], stats["tuned"][m], samples=s.samples, seed=s.seed)
        for row, column in zip(rows, draws.T, strict=True):
            row.setdefault("ci", {})[m] = list(percentile_ci(column, s.confidence))
        if len(counted) >= 2:
            out["gap"][m] = _gap(m, [rows[i] for i in counted], draws[:, counted], s.confidence)
    if champion is not None:
        out["worst_vs_champion"] = _versus_champion(rows, groups, stats["tuned"], champion, metrics, s, out["notes"])
    return out


def _gap(metric: str, rows: list[dict], draws: np.ndarray, confidence: float) -> dict:
    """Best - worst slice of the tuned model on `metric`, with the CI of that gap over within-slice resamples."""
    values = np.array([row["tuned"][metric] for row in rows])
    best, worst = (values.argmax(), values.argmin()) if higher_is_better(metric) else (values.argmin(), values.argmax())
    low, high = percentile_ci(draws.max(axis=1) - draws.min(axis=1), confidence)
    return {"gap": float(values.max() - values.min()), "ci_low": low, "ci_high": high,
            "best": rows[best]["value"], "worst": rows[worst]["value"], "slices": len(rows)}


def _versus_champion(rows: list[dict], groups: list[tuple[str, np.ndarray]], tuned: Mapping[str, IndexStat],
                     champion: SliceChampion, metrics: Sequence[str], s: SliceSettings, notes: list[str]) -> dict:
    """Tuned - champion per slice on the rows the champion never trained on; the worst slice per metric."""
    counted = []
    for i, (row, (_, idx)) in enumerate(zip(rows, groups, strict=True)):
        kept = idx[np.asarray(champion.rows, dtype=bool)[idx]]
        row["champion_rows"] = len(kept)
        row["champion"] = {m: _point(champion.stats[m], kept) for m in metrics}
        row["vs_champion"] = {m: bootstrap_delta(len(kept), lambda b, st=tuned[m], k=kept: st(k[b]),
                                                 lambda b, st=champion.stats[m], k=kept: st(k[b]),
                                                 samples=s.samples, confidence=s.confidence, seed=s.seed)
                              for m in metrics}
        if len(kept) >= s.min_rows:
            counted.append(i)
    left_out = [(row["value"], row["champion_rows"]) for i, row in enumerate(rows) if i not in counted]
    if left_out:
        notes.append(f"vs champion: {_listing(left_out)} unseen by the champion: fewer than {s.min_rows}; "
                     "left out of the worst slice")
    worst: dict[str, dict] = {}
    for m in metrics:
        if not counted:
            continue
        pick = min if higher_is_better(m) else max
        i = pick(counted, key=lambda j: rows[j]["vs_champion"][m]["delta"])
        worst[m] = {**rows[i]["vs_champion"][m], "slice": rows[i]["value"], "rows": rows[i]["champion_rows"]}
    return worst


def slice_metrics(test: pd.DataFrame, y_true: np.ndarray, preds: Mapping[str, np.ndarray], columns: Sequence[str],
                  num_classes: int, *, metrics: Sequence[str] = ("accuracy", "macro_f1"),
                  settings: SliceSettings = SliceSettings(), champion: tuple[np.ndarray, np.ndarray] | None = None,
                  ) -> dict[str, dict]:
    """`slice_report` for class-id predictions: `preds` is model name -> class ids ("tuned" required);
    `champion` is (the champion's class ids over every test row, the bool mask of rows it may be scored on)."""
    stats = {name: label_stats(y_true, p, metrics, num_classes) for name, p in preds.items()}
    champ = None
    if champion is not None:
        pred, rows = champion
        champ = SliceChampion(label_stats(y_true, pred, metrics, num_classes), np.asarray(rows, dtype=bool))
    return slice_report(test, columns, stats, metrics=metrics, settings=settings, champion=champ)


def _put(flat: dict[str, float], prefix: str, kind: str, metric: str, trio: tuple[float, float, float]) -> None:
    for suffix, value in zip(("", "_ci_low", "_ci_high"), trio, strict=True):
        flat[f"{prefix}{kind}{suffix}.{metric}"] = float(value)


def slice_flat(slices: Mapping[str, dict]) -> dict[str, float]:
    """The gate namespace of a slice report: `slices.<column>.max_gap.<m>` (and `_ci_low` / `_ci_high`) per column,
    `slices.max_gap.<m>` the largest over the columns, and the same for `worst_vs_champion` (the worst slice's
    tuned - champion delta: the smallest for a higher-is-better metric)."""
    flat: dict[str, float] = {}
    overall: dict[tuple[str, str], tuple[float, float, float]] = {}
    for column, res in slices.items():
        entries = [(GAP, m, (g["gap"], g["ci_low"], g["ci_high"])) for m, g in (res.get("gap") or {}).items()]
        entries += [(WORST, m, (w["delta"], w["ci_low"], w["ci_high"]))
                    for m, w in (res.get("worst_vs_champion") or {}).items()]
        for kind, m, trio in entries:
            if _COLUMN_KEY.fullmatch(column):
                _put(flat, f"slices.{column}.", kind, m, trio)
            current = overall.get((kind, m))
            larger_is_worse = kind == GAP or not higher_is_better(m)
            if current is None or (trio[0] > current[0] if larger_is_worse else trio[0] < current[0]):
                overall[(kind, m)] = trio
    for (kind, m), trio in overall.items():
        _put(flat, "slices.", kind, m, trio)
    return flat
