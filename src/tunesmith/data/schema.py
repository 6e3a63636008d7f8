"""Map the configured columns and sort every row into usable, bad (with a reason) or excluded by config.

Bad rows are never dropped silently: `data.bad_rows: fail` stops at the first one with `file:line: reason`,
`quarantine` writes each to quarantine.jsonl and counts it. Rows whose label is in `data.drop_labels` are
left out on purpose and only counted. Labels are compared as strings: a JSON/parquet 1 or 1.0 is the label
"1", a CSV cell is its text as written, and data.labels / drop_labels compare as written in the config.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tunesmith.config import DataConfig
from tunesmith.data.errors import DataError, quoted

if TYPE_CHECKING:
    from tunesmith.data.load import Table

SOURCE, ORDER = "_source", "_order"  # internal columns: where a row came from, its position in the file
TEXT, LABEL = "text", "label"  # the output column names, whatever the file calls them
SPLIT_TEXT = "_split_text"  # internal, optional: what the split and overlap checks key on when not the text
_QUARANTINE_HINT = "set data.bad_rows: quarantine to skip such rows (each goes to quarantine.jsonl with its reason)"


class BadRowReason(str, Enum):
    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    TOO_LONG_LINE = "too_long_line"  # a JSON Lines row over data.max_line_bytes, skipped unread
    NOT_AN_OBJECT = "not_an_object"
    MALFORMED_ROW = "malformed_row"
    MISSING_TEXT = "missing_text"
    NON_STRING_TEXT = "non_string_text"
    EMPTY_TEXT = "empty_text"
    MISSING_LABEL = "missing_label"
    INVALID_LABEL = "invalid_label"
    UNKNOWN_LABEL = "unknown_label"
    WRONG_ROLE = "wrong_role"  # causal-lm: a turn whose role is not system/user/assistant/tool
    EMPTY_ASSISTANT = "empty_assistant"  # causal-lm: an assistant turn with no text
    BAD_CONVERSATION = "bad_conversation"  # causal-lm: not a list of turns, no assistant turn, ...
    TOO_LONG = "too_long"  # causal-lm: longer than model.max_length tokens (data.too_long: drop)
    MISSING_POSITIVE = "missing_positive"  # embedding: a query without its relevant document
    INVALID_SCORE = "invalid_score"  # embedding: a scored pair whose score is not a finite number
    INVALID_TARGET = "invalid_target"  # regression: a target that is missing or not a finite number
    MISSING_TOKENS = "missing_tokens"  # token-classification: no word list
    INVALID_TOKENS = "invalid_tokens"  # token-classification: not a list of non-blank strings
    MISSING_TAGS = "missing_tags"  # token-classification: words without tags
    TAGS_LENGTH = "tags_length"  # token-classification: a different number of tags than words
    INVALID_TAG = "invalid_tag"  # token-classification: not O / B-X / I-X, or (invalid_tags: quarantine) I-X after O
    INVALID_SPAN = "invalid_span"  # token-classification: a span that is not {start, end, label} inside the text
    MISALIGNED_SPAN = "misaligned_span"  # token-classification: a span that cuts a word
    OVERLAPPING_SPANS = "overlapping_spans"  # token-classification: two spans share a word
    MISSING_DOCUMENT = "missing_document"  # reranking: a query without the document to score
    INVALID_RELEVANCE = "invalid_relevance"  # reranking: a relevance that is missing, negative or not a number
    EMPTY_LABELS = "empty_labels"  # multi-label: an empty label list (data.allow_empty_labels: false)
    MISSING_IMAGE = "missing_image"  # images: no path, or the file it names does not exist
    UNREADABLE_IMAGE = "unreadable_image"  # images: not an image Pillow can decode
    TRUNCATED_IMAGE = "truncated_image"  # images: the file ends before its pixels do
    IMAGE_TOO_LARGE = "image_too_large"  # images: more pixels or bytes than the limit (a decompression bomb)


_HINTS = {
    BadRowReason.INVALID_JSON: f"fix the line (one JSON object per line), or {_QUARANTINE_HINT}",
    BadRowReason.INVALID_UTF8: f"re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or {_QUARANTINE_HINT}",
    BadRowReason.NOT_AN_OBJECT: f"each line must be a JSON object like {{\"text\": ..., \"label\": ...}}, or {_QUARANTINE_HINT}",
    BadRowReason.TOO_LONG: "raise model.max_length, shorten the conversation, or set data.too_long: truncate",
    BadRowReason.UNKNOWN_LABEL: f"add the label to data.labels (or to data.drop_labels to leave such rows out), or {_QUARANTINE_HINT}",
}


@dataclass
class BadRow:
    """A row that cannot be used, where it came from, why, and its raw content."""

    source: str
    reason: BadRowReason
    detail: str
    row: dict[str, Any]
    order: int = 0  # position in its file, to report the first bad row first

    def to_record(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason.value, "detail": self.detail, "row": self.row}

    def error(self) -> DataError:
        return DataError(self.source, self.detail, _HINTS.get(self.reason, f"fix the row, or {_QUARANTINE_HINT}"))


@dataclass
class CheckedTable:
    """A table sorted out: usable rows (text, label, slices, _source, _order), bad rows, excluded counts."""

    rows: pd.DataFrame
    bad: list[BadRow] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)
    truncated: int = 0  # causal-lm rows cut to model.max_length (data.too_long: truncate)
    warnings: list[str] = field(default_factory=list)  # one per truncated row, naming its file:line


class RowProblem(ValueError):
    """Why one raw row cannot be used: a bad-row reason and a detail (it becomes a BadRow with the row's file:line)."""

    def __init__(self, reason: BadRowReason, detail: str):
        self.reason = reason
        super().__init__(detail)


def sort_rows(table: Table, to_row, columns: list[str], slice_columns: list[str]) -> CheckedTable:
    """Each raw record of `table` through `to_row(raw)`: a dict of the family's columns (the row is used), None (left
    out on purpose; `to_row` counts it) or a RowProblem (a bad row with its file:line). Rows keep file order."""
    df = table.frame
    bad = list(table.bad)
    kept: list[dict[str, Any]] = []
    raw_columns = [c for c in df.columns if c not in (SOURCE, ORDER)]
    if not df.empty:
        for raw, source, order in zip(df[raw_columns].to_dict("records"), df[SOURCE], df[ORDER], strict=True):
            raw = {str(k): plain(v) for k, v in raw.items()}
            try:
                row = to_row(raw, source)
            except RowProblem as problem:
                bad.append(BadRow(source, problem.reason, str(problem), raw, int(order)))
                continue
            if row is not None:
                kept.append({**row, **{c: raw.get(c) for c in slice_columns}, SOURCE: source, ORDER: int(order)})
    bad.sort(key=lambda b: b.order)
    columns = [*columns, *slice_columns, SOURCE, ORDER]
    rows = pd.DataFrame(kept, columns=columns) if kept else pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    rows[ORDER] = rows[ORDER].astype("int64")
    return CheckedTable(rows, bad)


def check_columns(table: Table, cfg: DataConfig) -> None:
    """Raise a DataError naming the file, its columns and the config key when a configured column is absent."""
    columns = [str(c) for c in table.frame.columns if c not in (SOURCE, ORDER)]
    if not columns:
        return  # nothing could be read; the bad rows (or the empty-data error) say why
    wanted = [("data.text_column", cfg.text_column), ("data.label_column", cfg.label_column)]
    wanted += [("data.slice_columns", c) for c in cfg.slice_columns]
    for key, name in wanted:
        if name in columns:
            continue
        by_case = [c for c in columns if c.casefold() == name.casefold()]
        close = by_case or difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? set {key}: {close[0]}" if close else f"set {key} to one of the columns"
        raise DataError(str(table.path), f"no column {name!r} ({key}); the columns are {quoted(columns)}", hint)
    clash = [c for c in cfg.slice_columns if c in (TEXT, LABEL, SOURCE) and c not in (cfg.text_column, cfg.label_column)]
    if clash:
        raise DataError("data.slice_columns", f"{quoted(clash)} would clash with tunesmith's own columns", "rename the column")


def check_rows(table: Table, cfg: DataConfig) -> CheckedTable:
    """Give every row exactly one fate: usable, bad (first failing check wins), or excluded by data.drop_labels."""
    df = table.frame
    if df.empty:
        return CheckedTable(_usable(df, pd.Series([], dtype=object), cfg), list(table.bad))
    missing_text, non_string, empty = _text_checks(df[cfg.text_column])
    label, invalid_label = label_strings(df[cfg.label_column])
    missing_label = label.isna() & ~invalid_label
    excluded = label.isin(cfg.drop_labels)
    unknown = label.notna() & ~label.isin(cfg.labels) if cfg.labels else pd.Series(False, index=df.index)
    conditions = [excluded, missing_text, non_string, empty, missing_label, invalid_label, unknown]
    reasons = [BadRowReason.MISSING_TEXT, BadRowReason.NON_STRING_TEXT, BadRowReason.EMPTY_TEXT,
               BadRowReason.MISSING_LABEL, BadRowReason.INVALID_LABEL, BadRowReason.UNKNOWN_LABEL]
    fate = np.select([c.to_numpy(bool) for c in conditions], ["excluded"] + [r.value for r in reasons], default="")
    bad = list(table.bad) + _bad_rows(df, fate, label, cfg)
    bad.sort(key=lambda b: b.order)
    ok = fate == ""
    return CheckedTable(_usable(df[ok], label[ok], cfg), bad, Counter(label[fate == "excluded"].tolist()))


def _usable(df: pd.DataFrame, label: pd.Series, cfg: DataConfig) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    out[TEXT] = df[cfg.text_column].astype("str") if len(df) else pd.Series([], dtype="str")
    out[LABEL] = label.astype("str") if len(df) else pd.Series([], dtype="str")
    for c in cfg.slice_columns:
        out[c] = df[c] if c in df else None
    out[SOURCE] = df[SOURCE] if SOURCE in df else pd.Series([], dtype=object)
    out[ORDER] = df[ORDER] if ORDER in df else pd.Series([], dtype="int64")
    return out.reset_index(drop=True)


def _text_checks(s: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(missing, not a string, empty or whitespace) masks for the text column."""
    if isinstance(s.dtype, pd.StringDtype):  # every value is a str or missing: stay vectorized
        missing = s.isna()
        return missing, pd.Series(False, index=s.index), s.str.strip().eq("").fillna(False).astype(bool)
    kind = s.map(text_kind)
    return kind.eq(1), kind.eq(2), kind.eq(3)


def text_kind(v: Any) -> int:
    if isinstance(v, str):
        return 3 if not v.strip() else 0
    return 1 if _is_missing(v) else 2


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def label_strings(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Labels as strings (None where missing or blank) and a mask of values that cannot be labels (lists, dicts)."""
    if isinstance(s.dtype, pd.StringDtype):
        text = s.astype(object).where(s.str.strip().ne("").fillna(False).astype(bool), None)
        return text, pd.Series(False, index=s.index)
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.astype(str).astype(object), pd.Series(False, index=s.index)
    text = s.map(_label_text)
    invalid = text.map(lambda v: v is _INVALID)
    return text.where(~invalid, None).astype(object), invalid.astype(bool)


_INVALID = object()


def _label_text(v: Any) -> Any:
    if isinstance(v, str):
        return v if v.strip() else None
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else str(int(v)) if float(v).is_integer() else repr(float(v))
    return None if _is_missing(v) else _INVALID


def _bad_rows(df: pd.DataFrame, fate: np.ndarray, label: pd.Series, cfg: DataConfig) -> list[BadRow]:
    raw_columns = [c for c in df.columns if c not in (SOURCE, ORDER)]
    positions = np.flatnonzero((fate != "") & (fate != "excluded"))
    sub = df.iloc[positions]
    rows = []
    for pos, raw, source, order in zip(positions, sub[raw_columns].to_dict("records"), sub[SOURCE], sub[ORDER], strict=True):
        raw = {str(k): plain(v) for k, v in raw.items()}  # only the bad rows are visited one by one
        reason = BadRowReason(fate[pos])
        detail = _detail(reason, raw.get(cfg.text_column), label.iloc[pos], raw.get(cfg.label_column), cfg)
        rows.append(BadRow(source, reason, detail, raw, int(order)))
    return rows


def _detail(reason: BadRowReason, text: Any, label: Any, raw_label: Any, cfg: DataConfig) -> str:
    if reason is BadRowReason.MISSING_TEXT:
        return f"no text in column {cfg.text_column!r}"
    if reason is BadRowReason.NON_STRING_TEXT:
        return f"the text in column {cfg.text_column!r} is a {type(text).__name__} ({str(text)[:40]!r}), not a string"
    if reason is BadRowReason.EMPTY_TEXT:
        return f"the text in column {cfg.text_column!r} is empty or whitespace"
    if reason is BadRowReason.MISSING_LABEL:
        return f"no label in column {cfg.label_column!r}"
    if reason is BadRowReason.INVALID_LABEL:
        multi = "; for a list of labels per row set data.multi_label: true" if isinstance(raw_label, list) else ""
        return f"the label in column {cfg.label_column!r} is a {type(raw_label).__name__}; expected a string or number{multi}"
    near = [k for k in cfg.labels or [] if _same_label(k, str(label))]
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"label {label!r} is not in data.labels{hint}"


def _same_label(a: str, b: str) -> bool:
    """Labels that look alike: by case and whitespace (`Pos` / `pos`) or as numbers (`1.0` / `1`)."""
    if a.casefold().strip() == b.casefold().strip():
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def plain(v: Any) -> Any:
    """A raw cell as plain JSON-able Python: numpy scalars/arrays unwrapped, NaN/NA as None."""
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if _is_missing(v):
        return None
    return v if isinstance(v, str | int | float | bool) else str(v)


def label_case_conflicts(labels: Iterable[str]) -> list[list[str]]:
    """Groups of distinct labels that differ only by case or whitespace (`Positive` vs `positive `)."""
    groups: dict[str, set[str]] = defaultdict(set)
    for label in labels:
        groups[" ".join(label.split()).casefold()].add(label)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)
