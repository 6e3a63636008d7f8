"""Entity-level precision / recall / F1 (seqeval's strict IOB2 matching), per type, micro and macro, resamplable.

    counts = entity_counts(gold_tags, pred_tags, types)   # (n_sentences, 3, n_types): tp, predicted, gold
    scores = entity_scores(counts.sum(0))                 # f1, precision, recall, macro_*, per_type

Entities are read by seqeval (`Entities(..., IOB2)`, its strict mode): an entity is correct only when its type and
both boundaries match. Scores come from per-sentence counts, so a bootstrap over sentences is a sum over resampled
rows, and the full-set scores equal `seqeval.metrics.classification_report(mode="strict", scheme=IOB2)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from seqeval.scheme import IOB2, Entities

from tunesmith.evaluation.significance import IndexStat, bootstrap_delta

TOKEN_METRICS = ("f1", "precision", "recall", "macro_f1", "macro_precision", "macro_recall")
TP, PRED, GOLD = 0, 1, 2


def entity_sets(sequences: Sequence[Sequence[str]]) -> list[set[tuple[str, int, int]]]:
    """Per sentence, its entities as (type, start word, end word exclusive), read strictly as IOB2."""
    found = Entities([list(s) for s in sequences], IOB2, suffix=False).entities
    return [{(e.tag, e.start, e.end) for e in sent} for sent in found]


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], types: Sequence[str]) -> np.ndarray:
    """(n, 3, len(types)) int counts per sentence: true positives, predicted and gold entities per type."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted ones")
    index = {t: i for i, t in enumerate(types)}
    out = np.zeros((len(gold), 3, len(types)), dtype=np.int64)
    for row, (g, p) in enumerate(zip(entity_sets(gold), entity_sets(pred), strict=True)):
        for k, ents in ((GOLD, g), (PRED, p), (TP, g & p)):
            for e in ents:
                if e[0] in index:
                    out[row, k, index[e[0]]] += 1
    return out


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


def _prf(tp: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, r = _ratio(tp, pred), _ratio(tp, gold)
    return p, r, _ratio(2 * tp, pred + gold)


def batch_scores(totals: np.ndarray, active: np.ndarray) -> dict[str, np.ndarray]:
    """TOKEN_METRICS of (..., 3, T) summed counts; macro averages over the `active` types (bool, T)."""
    tp, pred, gold = totals[..., TP, :], totals[..., PRED, :], totals[..., GOLD, :]
    p, r, f = _prf(tp.sum(-1), pred.sum(-1), gold.sum(-1))
    pt, rt, ft = _prf(tp, pred, gold)  # per type
    n = max(int(active.sum()), 1)
    return {"f1": f, "precision": p, "recall": r, "macro_f1": (ft * active).sum(-1) / n,
            "macro_precision": (pt * active).sum(-1) / n, "macro_recall": (rt * active).sum(-1) / n}


def entity_scores(counts: np.ndarray, types: Sequence[str]) -> dict:
    """TOKEN_METRICS as floats plus `per_type` {type: precision, recall, f1, support} from (n, 3, T) counts.

    Macro averages run over the types that occur in the gold or the predicted entities, as seqeval's do.
    """
    totals = counts.sum(0)
    active = _active(counts)
    scores = {k: float(v) for k, v in batch_scores(totals, active).items()}
    p, r, f = _prf(totals[TP], totals[PRED], totals[GOLD])
    scores["per_type"] = {t: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                              "support": int(totals[GOLD, i]), "predicted": int(totals[PRED, i])}
                          for i, t in enumerate(types)}
    scores["entities"] = int(totals[GOLD].sum())
    scores["sentences"] = int(counts.shape[0])
    return scores


def _active(counts: np.ndarray) -> np.ndarray:
    """Types a macro average runs over: those in the gold or the predicted entities of the full set (seqeval's)."""
    totals = counts.sum(0)
    return (totals[PRED] + totals[GOLD]) > 0


def scalar(scores: dict) -> dict[str, float]:
    """The gate namespace of one model's scores: TOKEN_METRICS only."""
    return {k: float(scores[k]) for k in TOKEN_METRICS}


def metric_stats(counts: np.ndarray, active: np.ndarray) -> dict[str, IndexStat]:
    """One resamplable statistic per TOKEN_METRIC: sentences drawn by idx (B, n), their counts summed."""
    def stat(name: str) -> IndexStat:
        return lambda idx: batch_scores(counts[idx].sum(1), active)[name]

    return {m: stat(m) for m in TOKEN_METRICS}


def deltas(a: np.ndarray, b: np.ndarray, *, samples: int, confidence: float, seed: int) -> dict[str, dict]:
    """Model a - model b on every TOKEN_METRIC, with a paired bootstrap over sentences (the same draws for both)."""
    sa, sb = metric_stats(a, _active(a)), metric_stats(b, _active(b))  # each model's macro as its report shows it
    return {m: bootstrap_delta(a.shape[0], sa[m], sb[m], samples=samples, confidence=confidence, seed=seed)
            for m in TOKEN_METRICS}
