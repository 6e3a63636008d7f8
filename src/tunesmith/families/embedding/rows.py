"""Embedding rows: (query, positive) pairs with optional hard negatives, or scored pairs (text1, text2, score).

A row that cannot train an embedding model (no positive, an empty text, a negative that is not a string, a score
that is not a number) becomes a BadRow naming its file:line, so `data.bad_rows` decides its fate. The row's TEXT is
a canonical rendering of the whole row (fingerprint, overlap); its split key is the query alone, so every row of one
query lands in the same split and a test query was never trained on.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from tunesmith.config import DataConfig
from tunesmith.data.errors import DataError, quoted
from tunesmith.data.schema import (
    LABEL,
    ORDER,
    SOURCE,
    SPLIT_TEXT,
    TEXT,
    BadRowReason,
    CheckedTable,
    RowProblem,
    sort_rows,
)

QUERY, POSITIVE, NEGATIVES, SCORE = "query", "positive", "negatives", "score"  # output columns of an embedding bundle
PAIR_COLUMNS = (QUERY, POSITIVE, NEGATIVES, SCORE)




def check_columns(table, cfg: DataConfig) -> bool:
    """Raise a DataError naming the file and config key when the query or positive column is absent.

    Returns whether the rows are scored pairs (the score column exists).
    """
    columns = [str(c) for c in table.frame.columns if c not in (SOURCE, ORDER)]
    if not columns:
        return False
    for key, name in (("data.query_column", cfg.query_column), ("data.positive_column", cfg.positive_column)):
        if name not in columns:
            raise DataError(str(table.path), f"no column {name!r} ({key}); the columns are {quoted(columns)}",
                            f"set {key} to the column that holds the {key.split('.')[1].split('_')[0]} text")
    return cfg.score_column in columns


def _text(value: Any, column: str, what: str) -> str:
    if value is None:
        reason = BadRowReason.MISSING_POSITIVE if what == "positive" else BadRowReason.MISSING_TEXT
        raise RowProblem(reason, f"no {what} in column {column!r}")
    if not isinstance(value, str):
        raise RowProblem(BadRowReason.NON_STRING_TEXT,
                          f"the {what} in column {column!r} is a {type(value).__name__}, not a string")
    if not value.strip():
        raise RowProblem(BadRowReason.EMPTY_TEXT, f"the {what} in column {column!r} is empty or whitespace")
    return value


def _negatives(value: Any, column: str) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [_text(v, column, f"hard negative {i}" if isinstance(value, list) else "hard negative")
            for i, v in enumerate(items)]


def _score(value: Any, column: str) -> float:
    if isinstance(value, bool) or value is None:
        raise RowProblem(BadRowReason.INVALID_SCORE, f"no numeric score in column {column!r} (got {value!r})")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise RowProblem(BadRowReason.INVALID_SCORE,
                          f"the score in column {column!r} is {str(value)[:40]!r}, not a number") from None
    if not math.isfinite(score):
        raise RowProblem(BadRowReason.INVALID_SCORE, f"the score in column {column!r} is {score}, not a finite number")
    return score


def to_pair(raw: dict[str, Any], cfg: DataConfig, scored: bool) -> dict[str, Any]:
    """QUERY, POSITIVE, NEGATIVES, SCORE of one raw row, checked; raises RowProblem."""
    query = _text(raw.get(cfg.query_column), cfg.query_column, "query")
    positive = _text(raw.get(cfg.positive_column), cfg.positive_column, "second text" if scored else "positive")
    negatives = [] if scored else _negatives(raw.get(cfg.negative_column), cfg.negative_column)
    score = _score(raw.get(cfg.score_column), cfg.score_column) if scored else None
    return {QUERY: query, POSITIVE: positive, NEGATIVES: negatives, SCORE: score}


def canonical_text(pair: dict[str, Any]) -> str:
    """One string per row, independent of column names: the fingerprint text."""
    parts = [f"<query>\n{pair[QUERY]}", f"<positive>\n{pair[POSITIVE]}"]
    parts += [f"<negative>\n{n}" for n in pair[NEGATIVES]]
    if pair[SCORE] is not None:
        parts.append(f"<score>\n{pair[SCORE]!r}")
    return "\n".join(parts)


def check_pair_rows(table, cfg: DataConfig) -> CheckedTable:
    """The embedding counterpart of `schema.check_rows`: usable pairs and bad rows, each with its file:line."""
    scored = check_columns(table, cfg)

    def to_row(raw: dict[str, Any], source: str) -> dict[str, Any]:
        pair = to_pair(raw, cfg, scored)
        return {TEXT: canonical_text(pair), LABEL: "", **pair, SPLIT_TEXT: pair[QUERY]}

    return sort_rows(table, to_row, [TEXT, LABEL, *PAIR_COLUMNS, SPLIT_TEXT], cfg.slice_columns)


def check_scored_consistency(frames: dict[str, pd.DataFrame]) -> None:
    """Scored pairs and retrieval pairs cannot be mixed across files (one loss trains them all)."""
    kinds = {name: f[SCORE].notna().all() for name, f in frames.items() if len(f)}
    if len(set(kinds.values())) > 1:
        shown = ", ".join(f"{n}: {'scored pairs' if k else 'query/positive pairs'}" for n, k in kinds.items())
        raise DataError("data.score_column", f"the files mix scored pairs and query/positive pairs ({shown})",
                        "give every file the score column, or none")


def redact_rows(frame: pd.DataFrame, hits, redact) -> None:
    """PII redaction of what an embedding trains on: the query, the positive and each negative."""
    for i in hits:
        pair = {c: frame.at[i, c] for c in PAIR_COLUMNS}
        pair.update({QUERY: redact(pair[QUERY]), POSITIVE: redact(pair[POSITIVE]),
                     NEGATIVES: [redact(n) for n in pair[NEGATIVES]]})
        for c in (QUERY, POSITIVE):
            frame.at[i, c] = pair[c]
        frame.at[i, NEGATIVES] = pair[NEGATIVES]
        frame.at[i, SPLIT_TEXT] = pair[QUERY]
        frame.at[i, TEXT] = canonical_text(pair)


def consistent_splits(frames: dict[str, pd.DataFrame], cfg=None) -> list[str]:
    """Every split holds scored pairs, or none does (a DataError names the split otherwise)."""
    check_scored_consistency(frames)
    return []
