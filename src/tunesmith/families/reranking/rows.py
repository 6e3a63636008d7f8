"""Reranking rows: (query, document, relevance), grouped by query.

Relevance is binary (0/1, true/false) or graded (0, 1, 2, ...). A row that cannot train a reranker (no query, no
document, an empty text, a relevance that is missing, negative or not a number) becomes a BadRow naming its
file:line, so `data.bad_rows` decides its fate. Like embedding pairs, the split key is the query alone: every
candidate of one query lands in the same split, so a test query was never trained on.
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

QUERY, DOCUMENT, RELEVANCE = "query", "document", "relevance"  # output columns of a reranking bundle
RELEVANCE_COLUMNS = (QUERY, DOCUMENT, RELEVANCE)




def check_columns(table, cfg: DataConfig) -> None:
    columns = [str(c) for c in table.frame.columns if c not in (SOURCE, ORDER)]
    if not columns:
        return
    for key in ("query_column", "document_column", "relevance_column"):
        name = getattr(cfg, key)
        if name not in columns:
            raise DataError(str(table.path), f"no column {name!r} (data.{key}); the columns are {quoted(columns)}",
                            f"set data.{key} to the column that holds the {key.split('_')[0]}")


def _text(value: Any, column: str, what: str) -> str:
    if value is None:
        reason = BadRowReason.MISSING_DOCUMENT if what == "document" else BadRowReason.MISSING_TEXT
        raise RowProblem(reason, f"no {what} in column {column!r}")
    if not isinstance(value, str):
        raise RowProblem(BadRowReason.NON_STRING_TEXT, f"the {what} in column {column!r} is a {type(value).__name__}, "
                       "not a string")
    if not value.strip():
        raise RowProblem(BadRowReason.EMPTY_TEXT, f"the {what} in column {column!r} is empty or whitespace")
    return value


def _relevance(value: Any, column: str) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        rel = float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        raise RowProblem(BadRowReason.INVALID_RELEVANCE,
                       f"the relevance in column {column!r} is {str(value)[:40]!r}, not a number") from None
    if not math.isfinite(rel) or rel < 0:
        raise RowProblem(BadRowReason.INVALID_RELEVANCE, f"the relevance in column {column!r} is {value!r}; expected a "
                       "finite number >= 0 (0/1, or graded 0, 1, 2, ...)")
    return rel


def to_candidate(raw: dict[str, Any], cfg: DataConfig) -> dict[str, Any]:
    """QUERY, DOCUMENT, RELEVANCE of one raw row, checked; raises RowProblem."""
    return {QUERY: _text(raw.get(cfg.query_column), cfg.query_column, "query"),
            DOCUMENT: _text(raw.get(cfg.document_column), cfg.document_column, "document"),
            RELEVANCE: _relevance(raw.get(cfg.relevance_column), cfg.relevance_column)}


def check_relevance_rows(table, cfg: DataConfig) -> CheckedTable:
    """The reranking counterpart of `schema.check_rows`: usable candidates and bad rows, each with its file:line."""
    check_columns(table, cfg)

    def to_row(raw: dict[str, Any], source: str) -> dict[str, Any]:
        row = to_candidate(raw, cfg)  # the text is what the fingerprint and the duplicate checks see
        return {TEXT: pair_text(row[QUERY], row[DOCUMENT]), LABEL: repr(row[RELEVANCE]), **row, SPLIT_TEXT: row[QUERY]}

    return sort_rows(table, to_row, [TEXT, LABEL, *RELEVANCE_COLUMNS, SPLIT_TEXT], cfg.slice_columns)


def check_groups(frames: dict[str, pd.DataFrame]) -> list[str]:
    """Warnings for eval/test queries that cannot be ranked (no relevant candidate, or a single candidate)."""
    warnings = []
    for name in ("eval", "test"):
        f = frames[name]
        if not len(f):
            continue
        groups = f.groupby(QUERY)[RELEVANCE].agg(["max", "size"])
        useless = int(((groups["max"] <= 0) | (groups["size"] < 2)).sum())
        if useless:
            warnings.append(f"{useless} of {len(groups)} {name} queries have no relevant candidate or only one "
                            "candidate; ranking metrics skip them")
    return warnings


def pair_text(query: str, document: str) -> str:
    """The text the fingerprint and the duplicate checks see for one candidate."""
    return f"<query>\n{query}\n<document>\n{document}"


def redact_rows(frame: pd.DataFrame, hits, redact) -> None:
    """PII redaction of what a reranker trains on: the query and the document."""
    for i in hits:
        query, document = redact(frame.at[i, QUERY]), redact(frame.at[i, DOCUMENT])
        frame.at[i, QUERY], frame.at[i, DOCUMENT], frame.at[i, SPLIT_TEXT] = query, document, query
        frame.at[i, TEXT] = pair_text(query, document)


def group_warnings(frames: dict[str, pd.DataFrame], cfg=None) -> list[str]:
    return check_groups(frames)
