"""Token-classification rows: words with BIO / IOB2 tags, read from jsonl/csv/parquet, CoNLL text, or text + spans.

    checked = check_token_rows(load_token_table("data.path", path, cfg.data), cfg)

Three inputs become one shape (TOKENS: list of words, TAGS: one IOB2 tag per word):
  * rows with `data.tokens_column` + `data.tags_column` (lists; in a CSV cell, space-separated strings);
  * CoNLL text files: one `token ... tag` per line (first column the token, last the tag), a blank line between
    sentences, `-DOCSTART-` lines ignored;
  * rows with `data.text_column` + `data.spans_column` ([{start, end, label}] character offsets): the text is split
    into words by `split_words` and every span must start and end on a word boundary.
A row that cannot be used (tags of another length, a tag that is not O / B-X / I-X, a misaligned or overlapping span,
a missing field) becomes a BadRow with its file:line, so `data.bad_rows` decides its fate. An I-X that does not
continue an X entity (IOB1 files, a broken export) is read as B-X and counted (`token_classification.invalid_tags:
repair`) or quarantined as invalid_tag (`quarantine`). TEXT is the sentence (the data gates read it); LABEL is the
tag sequence, so the fingerprint and the conflicting-duplicates check see the tags.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from tunesmith.config import Config, DataConfig, InvalidTagPolicy
from tunesmith.data.errors import DataError, quoted
from tunesmith.data.load import Table, load_table, require_readable
from tunesmith.data.schema import (
    LABEL,
    ORDER,
    SOURCE,
    TEXT,
    BadRow,
    BadRowReason,
    CheckedTable,
    RowProblem,
    sort_rows,
)

TOKENS, TAGS = "tokens", "tags"  # output columns of a token-classification bundle
TOKEN_COLUMNS = (TOKENS, TAGS)
CONLL_SUFFIXES = (".conll", ".conllu", ".iob", ".iob2", ".bio")
OUTSIDE = "O"
# Words of raw text: runs of word characters joined by in-word punctuation ("INV-2024-0042", "1,234.50",
# "2024-03-15", "a.b@c.com") or one other non-space character ("$", ",", ")"). Span conversion and serving both
# split text with it, so a served model sees words the way it was trained on them.
WORD_RE = re.compile(r"\w+(?:[-.,/:'@&+]\w+)*|[^\w\s]")
_TAG_RE = re.compile(r"^([BI])-(\S+)$")




def split_words(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the words of `text` (see WORD_RE)."""
    return [m.span() for m in WORD_RE.finditer(text)]


# --- reading -----------------------------------------------------------------------------------------------


def load_token_table(key: str, path: Path, d: DataConfig) -> Table:
    """A CoNLL file (data.format: conll, or a .conll/.iob/.bio suffix) or any table `load_table` reads."""
    if d.format == "conll" or (d.format == "auto" and path.is_file() and path.suffix.lower() in CONLL_SUFFIXES):
        return read_conll(key, path, d)
    return load_table(key, path, "auto" if d.format == "conll" else d.format, max_line_bytes=d.max_line_bytes)


def read_conll(key: str, path: Path, d: DataConfig) -> Table:
    """One row per sentence, its `_source` the line of its first token; a line without a tag is a bad sentence."""
    require_readable(key, path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"not UTF-8 ({exc.reason} at byte {exc.start})",
                        "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)") from None
    records, sources, bad = [], [], []
    sentence: list[tuple[int, list[str]]] = []

    def flush() -> None:
        if not sentence:
            return
        first = f"{path}:{sentence[0][0]}"
        broken = next(((n, cols) for n, cols in sentence if len(cols) < 2), None)
        if broken is not None:
            n, cols = broken
            raw = {"lines": [" ".join(c) for _, c in sentence]}
            bad.append(BadRow(f"{path}:{n}", BadRowReason.MALFORMED_ROW,
                              f"line {n} has {len(cols)} column ({cols[0][:40]!r}); a CoNLL line is `token ... tag` "
                              f"(the sentence starting at line {sentence[0][0]} is set aside)", raw, len(records) + len(bad)))
        else:
            records.append({d.tokens_column: [c[0] for _, c in sentence], d.tags_column: [c[-1] for _, c in sentence]})
            sources.append(first)
        sentence.clear()

    for n, line in enumerate(lines, 1):
        cols = line.split()
        if not cols:
            flush()
        elif cols[0] == "-DOCSTART-":  # document separators of CoNLL-2003-style files, not sentences
            flush()
        else:
            sentence.append((n, cols))
    flush()
    if not records and not bad:
        raise DataError(str(path), "no sentences: the file has no `token tag` lines", "check data.format and the path")
    frame = pd.DataFrame(records, columns=[d.tokens_column, d.tags_column])
    order = _orders(len(records), bad)
    frame[SOURCE] = pd.Series(sources, dtype=object)
    frame[ORDER] = pd.Series(order, dtype="int64")
    return Table(key, path, "conll", frame, bad)


def _orders(n_good: int, bad: list[BadRow]) -> list[int]:
    """File order of the good sentences, given the orders the bad ones took while reading."""
    taken = {b.order for b in bad}
    out, i = [], 0
    while len(out) < n_good:
        if i not in taken:
            out.append(i)
        i += 1
    return out


# --- checking ----------------------------------------------------------------------------------------------


def check_columns(table: Table, d: DataConfig) -> bool:
    """Whether rows may give text + spans; a DataError naming the config keys when neither input is there."""
    columns = [str(c) for c in table.frame.columns if c not in (SOURCE, ORDER)]
    spans = d.spans_column in columns and d.text_column in columns
    if not columns or d.tokens_column in columns or spans:
        return spans
    raise DataError(str(table.path), f"no column {d.tokens_column!r} (data.tokens_column), nor {d.text_column!r} + "
                    f"{d.spans_column!r} (data.text_column + data.spans_column); the columns are {quoted(columns)}",
                    "name the word-list column in data.tokens_column (with data.tags_column), or the text and its "
                    "character spans in data.text_column and data.spans_column")


def entity_types(labels: list[str] | None) -> list[str] | None:
    """data.labels as entity types: `B-VENDOR`, `I-VENDOR` and `VENDOR` are the same type; `O` is not one."""
    if labels is None:
        return None
    types = [label[2:] if _TAG_RE.match(label) else label for label in labels]
    return list(dict.fromkeys(t for t in types if t != OUTSIDE))


def tag_labels(types: list[str]) -> list[str]:
    """The model's label list: O, then B-/I- of each type in the given order."""
    return [OUTSIDE] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def _words(value: Any, column: str) -> list[str]:
    if isinstance(value, str) and value.strip():
        value = value.split()  # a CSV cell: words separated by spaces
    if value is None:
        raise RowProblem(BadRowReason.MISSING_TOKENS, f"no word list in column {column!r}")
    if not isinstance(value, list) or not value:
        raise RowProblem(BadRowReason.INVALID_TOKENS, f"column {column!r} must hold a non-empty list of words "
                         f"(got {type(value).__name__} {str(value)[:40]!r})")
    for i, w in enumerate(value):
        if not isinstance(w, str) or not w.strip():
            raise RowProblem(BadRowReason.INVALID_TOKENS, f"word {i} in column {column!r} is {w!r}; every word must "
                             "be a non-blank string")
    return [w.strip() for w in value]


def normalize_tags(tags: list[str], policy: InvalidTagPolicy, types: list[str] | None) -> tuple[list[str], int]:
    """IOB2 tags and how many I- tags were read as B- (policy repair); RowProblem for anything else."""
    out, repaired = [], 0
    for i, tag in enumerate(tags):
        if tag == OUTSIDE:
            out.append(tag)
            continue
        m = _TAG_RE.match(tag) if isinstance(tag, str) else None
        if m is None:
            raise RowProblem(BadRowReason.INVALID_TAG, f"tag {i} is {tag!r}; tags are O, B-<type> or I-<type> (IOB2)")
        prefix, kind = m.groups()
        if types is not None and kind not in types:
            raise RowProblem(BadRowReason.UNKNOWN_LABEL, f"tag {i} {tag!r}: type {kind!r} is not in data.labels "
                             f"({', '.join(types)})")
        if prefix == "I" and (not out or out[-1][2:] != kind):
            if policy is InvalidTagPolicy.QUARANTINE:
                raise RowProblem(BadRowReason.INVALID_TAG, f"tag {i} {tag!r} follows {out[-1] if out else 'nothing'!r}"
                                 f", so it starts an entity; IOB2 starts with B-{kind} (token_classification."
                                 "invalid_tags: repair reads it as B-)")
            prefix, repaired = "B", repaired + 1
        out.append(f"{prefix}-{kind}")
    return out, repaired


def tokens_row(raw: dict[str, Any], d: DataConfig, policy: InvalidTagPolicy, types) -> tuple[list, list, str, int]:
    words = _words(raw.get(d.tokens_column), d.tokens_column)
    tags = raw.get(d.tags_column)
    if isinstance(tags, str) and tags.strip():
        tags = tags.split()  # a CSV cell: tags separated by spaces
    if tags is None:
        raise RowProblem(BadRowReason.MISSING_TAGS, f"no tags in column {d.tags_column!r}")
    if not isinstance(tags, list):
        raise RowProblem(BadRowReason.INVALID_TAG, f"column {d.tags_column!r} must hold a list of tags "
                         f"(got {type(tags).__name__})")
    if len(tags) != len(words):
        raise RowProblem(BadRowReason.TAGS_LENGTH, f"{len(words)} words in {d.tokens_column!r} but {len(tags)} tags "
                         f"in {d.tags_column!r}; every word needs exactly one tag")
    tags, repaired = normalize_tags(tags, policy, types)
    return words, tags, " ".join(words), repaired


def spans_row(raw: dict[str, Any], d: DataConfig, types) -> tuple[list, list, str, int]:
    """Words and IOB2 tags of a text + character spans row; each span must cover whole words."""
    text = raw.get(d.text_column)
    if not isinstance(text, str) or not text.strip():
        reason = BadRowReason.MISSING_TEXT if text is None else BadRowReason.EMPTY_TEXT
        raise RowProblem(reason, f"no text in column {d.text_column!r} to take the spans from")
    spans = raw.get(d.spans_column)
    if spans is None:
        spans = []  # a text without entities is a valid negative example
    if not isinstance(spans, list):
        raise RowProblem(BadRowReason.INVALID_SPAN, f"column {d.spans_column!r} must hold a list of "
                         "{start, end, label} objects")
    offsets = split_words(text)
    starts = {s: i for i, (s, _) in enumerate(offsets)}
    ends = {e: i for i, (_, e) in enumerate(offsets)}
    tags = [OUTSIDE] * len(offsets)
    for k, span in enumerate(sorted(spans, key=lambda s: (s.get("start", 0), s.get("end", 0))
                                    if isinstance(s, dict) and _ints(s) else (0, 0))):
        start, end, kind = _span(span, k, d.spans_column, len(text))
        if types is not None and kind not in types:
            raise RowProblem(BadRowReason.UNKNOWN_LABEL, f"span {start}:{end} label {kind!r} is not in data.labels "
                             f"({', '.join(types)})")
        if start not in starts or end not in ends or ends[end] < starts[start]:
            raise RowProblem(BadRowReason.MISALIGNED_SPAN, f"span {start}:{end} ({text[start:end]!r}, {kind}) does "
                             f"not start and end on word boundaries; the words there are {_around(text, offsets, start, end)}")
        first, last = starts[start], ends[end]
        if any(t != OUTSIDE for t in tags[first:last + 1]):
            raise RowProblem(BadRowReason.OVERLAPPING_SPANS, f"span {start}:{end} ({text[start:end]!r}, {kind}) "
                             "overlaps another span; one word carries one tag")
        tags[first:last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
    if not offsets:
        raise RowProblem(BadRowReason.EMPTY_TEXT, f"the text in column {d.text_column!r} has no words")
    return [text[s:e] for s, e in offsets], tags, text, 0


def _ints(span: dict) -> bool:
    return all(isinstance(span.get(k), int) and not isinstance(span.get(k), bool) for k in ("start", "end"))


def _span(span: Any, k: int, column: str, length: int) -> tuple[int, int, str]:
    if not isinstance(span, dict) or not _ints(span):
        raise RowProblem(BadRowReason.INVALID_SPAN, f"span {k} in column {column!r} is {str(span)[:60]!r}; "
                         "expected {\"start\": int, \"end\": int, \"label\": str}")
    start, end, kind = span["start"], span["end"], span.get("label")
    if not isinstance(kind, str) or not kind.strip() or any(c.isspace() for c in kind):
        raise RowProblem(BadRowReason.INVALID_SPAN, f"span {start}:{end} has label {kind!r}; a label is a non-empty "
                         "string without spaces")
    if not 0 <= start < end <= length:
        raise RowProblem(BadRowReason.INVALID_SPAN, f"span {start}:{end} is outside the text (0:{length}) or empty")
    return start, end, kind


def _around(text: str, offsets: list[tuple[int, int]], start: int, end: int) -> str:
    near = [text[s:e] for s, e in offsets if e > start - 1 and s < end + 1]
    return quoted(near, limit=6) or "none"


def check_token_rows(table: Table, cfg: Config) -> CheckedTable:
    """The token-classification counterpart of `schema.check_rows`: usable rows and bad rows with file:line."""
    d, policy = cfg.data, cfg.token_classification.invalid_tags
    spans = check_columns(table, d)
    types = entity_types(d.labels)
    repaired: Counter = Counter()

    def to_row(raw: dict[str, Any], source: str) -> dict[str, Any]:
        use_spans = spans and raw.get(d.tokens_column) is None  # a row's own word list wins
        words, tags, text, fixed = spans_row(raw, d, types) if use_spans else tokens_row(raw, d, policy, types)
        if fixed:
            repaired[source] += fixed
        return {TEXT: text, LABEL: " ".join(tags), TOKENS: words, TAGS: tags}

    checked = sort_rows(table, to_row, [TEXT, LABEL, TOKENS, TAGS], d.slice_columns)
    if repaired:
        first = next(iter(repaired))
        checked.warnings.append(
            f"{table.key} ({table.path}): {len(repaired)} rows had {sum(repaired.values())} I- tags that start an "
            f"entity (IOB1, or a broken export); read as B- (token_classification.invalid_tags: repair), first at {first}")
    return checked


def redact_words(text: str, words: list[str], findings) -> list[str]:
    """`words` (found in order in `text`) with each word a PII finding touches replaced by `<TYPE>`; one word per
    word, so the tags still line up."""
    out, cursor = [], 0
    for w in words:
        start = text.find(w, cursor)
        if start < 0:  # not found verbatim (a word list that is not the text's): keep the word as it is
            out.append(w)
            continue
        end = cursor = start + len(w)
        hit = next((f for f in findings if f.start < end and f.end > start), None)
        out.append(f"<{hit.type.value}>" if hit else w)
    return out


# --- labels and the data card ------------------------------------------------------------------------------


def token_labels(train: pd.DataFrame, d: DataConfig) -> list[str]:
    """O, B-/I- per entity type: data.labels order when given, else the types of the train rows sorted."""
    types = entity_types(d.labels)
    if types is None:
        types = sorted({t[2:] for tags in train[TAGS] for t in tags if t != OUTSIDE})
    if not types:
        raise DataError("data.tags_column", f"the {len(train)} train rows have no entity (every tag is O)",
                        "check data.tags_column / data.spans_column, or add rows with entities")
    return tag_labels(types)


def entity_counts(rows: pd.DataFrame, labels: list[str]) -> dict[str, int]:
    """Entities per type in a split (B- tags), the token-classification label distribution."""
    counts = Counter(t[2:] for tags in rows[TAGS] for t in tags if t.startswith("B-")) if len(rows) else Counter()
    return {t: int(counts.get(t, 0)) for t in dict.fromkeys(label[2:] for label in labels if label != OUTSIDE)}


def unseen_types(splits: dict[str, pd.DataFrame], labels: list[str]) -> list[str]:
    """Warnings for entity types of eval/test that train never shows (the model cannot learn them)."""
    seen = {t for tags in splits["train"][TAGS] for t in tags}
    out = []
    for name in ("eval", "test"):
        missing = sorted({t[2:] for tags in splits[name][TAGS] for t in tags if t.startswith("B-")} - {s[2:] for s in seen})
        if missing:
            out.append(f"entity types {quoted(missing)} occur in {name} but never in train; the model cannot learn them")
    return out


def redact_rows(frame: pd.DataFrame, hits, redact=None) -> None:
    """PII redaction of the words a tagger trains on (their tags stay) and of the text."""
    from tunesmith.data import pii

    texts = frame[TEXT].astype(str)
    pos = list(hits)
    for i in pos:
        frame.at[i, TOKENS] = redact_words(texts.iat[i], frame.at[i, TOKENS], hits[i])
    frame.loc[pos, TEXT] = [pii.redact_text(texts.iat[i], hits[i]) for i in pos]


def label_set(splits: dict[str, pd.DataFrame], cfg, files: list) -> tuple[list[str], list[str]]:
    """O, B-/I- per entity type (data.labels order, else the train types); eval/test types train never shows warn."""
    labels = token_labels(splits["train"], cfg.data)
    return labels, unseen_types(splits, labels)
