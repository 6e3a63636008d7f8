"""Read one data file (jsonl, csv/tsv, parquet, or a saved HF dataset dir) into a raw table.

Every row keeps where it came from in `_source`: `path:line` for text formats (the physical line a CSV
record starts on, even when a quoted field spans lines or blank lines come before the header) and
`path#row=N` (0-based) for parquet/HF dirs.
Lines that cannot be read at all (invalid JSON, bytes that are not UTF-8, a CSV row with the wrong number
of fields) come back as bad rows rather than exceptions, so the bad-row policy decides what happens to them.
A file that cannot be read at all (corrupt, truncated, empty) raises a DataError naming the file.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO

import pandas as pd
from pyarrow import ArrowException

from tunesmith.data.errors import DataError
from tunesmith.data.schema import ORDER, SOURCE, BadRow, BadRowReason

_OPENERS: dict[str, Callable[..., IO[bytes]]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
}
# What readers raise on a corrupt, truncated or mislabeled file (ArrowInvalid is also a ValueError).
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, zlib.error, lzma.LZMAError, ArrowException)
_COMPRESSED_HINT = "check that the file is complete (a .gz/.bz2/.xz must decompress, e.g. `gzip -t`), or set data.format"
_UTF8_HINT = "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
_EMPTY_HINT = "check that the path names the complete data file (an export may have been cut short)"
_FORMAT_NAMES = {"jsonl": "JSON Lines", "csv": "CSV", "parquet": "parquet", "hf": "a saved HF dataset"}
_READ_HINTS = {
    "jsonl": _COMPRESSED_HINT,
    "csv": _COMPRESSED_HINT,
    "parquet": "the file is truncated or not parquet: write it again (DataFrame.to_parquet), or set data.format",
    "hf": "point at a folder written by Dataset.save_to_disk (state.json, dataset_info.json, *.arrow); save it again",
}


@dataclass
class Table:
    """One file as read: raw columns plus `_source` and `_order`, and the rows that could not be read."""

    key: str  # the config key the path came from: data.path, data.train, ...
    path: Path
    format: str
    frame: pd.DataFrame
    bad: list[BadRow] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.bad)


DEFAULT_MAX_LINE_BYTES = 16 * 2**20  # one JSON Lines row or CSV field; a longer one is a bad row, never read whole


def load_table(key: str, path: Path, configured_format: str = "auto", *,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Table:
    """Read the file at `path` (named by config key `key`) in the configured or detected format.

    Only regular files and dataset folders are read: a device (`/dev/zero`), FIFO or socket would be read without
    end or block forever. A line (JSON Lines) or field (CSV) longer than `max_line_bytes` is a bad row.
    """
    require_readable(key, path)
    fmt = detect_format(key, path, configured_format)
    _refuse_empty_file(key, path)
    readers = {"jsonl": partial(_read_jsonl, max_line_bytes=max_line_bytes),
               "csv": partial(_read_csv, max_line_bytes=max_line_bytes),
               "parquet": _read_parquet, "hf": _read_hf_dir}
    try:
        frame, bad = readers[fmt](path)
    except DataError:
        raise
    except _READ_ERRORS as exc:
        raise _unreadable(key, path, fmt, exc) from None
    if frame.empty and not bad:
        header = [c for c in frame.columns if c not in (SOURCE, ORDER)]
        what = "has columns but no rows" if header else "has no rows (only blank lines)"
        raise DataError(str(path), f"the file {what}, so {key} has no rows", _EMPTY_HINT)
    return Table(key=key, path=path, format=fmt, frame=frame, bad=bad)


def _refuse_empty_file(key: str, path: Path) -> None:
    if path.is_file() and path.stat().st_size == 0:
        raise DataError(str(path), f"the file is empty (0 bytes), so {key} has no rows", _EMPTY_HINT)


def _unreadable(key: str, path: Path, fmt: str, exc: Exception) -> DataError:
    problem = f"cannot read it as {_FORMAT_NAMES[fmt]} ({key}): {type(exc).__name__}: {exc}"
    return DataError(str(path), problem, _READ_HINTS[fmt])


STREAMED_FORMATS = ("jsonl", "csv", "parquet")  # read in batches; a saved HF dir is read whole


def iter_tables(key: str, path: Path, configured_format: str = "auto", *, batch_rows: int,
                max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[Table]:
    """`load_table` in batches: one Table per `batch_rows` rows (good and bad), in file order, with the same
    `_source`/`_order` per row and the same errors; only one batch is in memory at a time."""
    require_readable(key, path)
    fmt = detect_format(key, path, configured_format)
    if fmt not in STREAMED_FORMATS:
        raise DataError("data.batch_rows", f"{path} is read as {_FORMAT_NAMES.get(fmt, fmt)}, which is not read in batches",
                        "convert it to parquet or JSON Lines, or set data.batch_rows: 0")
    _refuse_empty_file(key, path)
    chunks = {"jsonl": partial(_jsonl_chunks, max_line_bytes=max_line_bytes, chunk_rows=batch_rows),
              "csv": partial(_csv_chunks, max_line_bytes=max_line_bytes, chunk_rows=batch_rows),
              "parquet": partial(_parquet_chunks, chunk_rows=batch_rows)}[fmt](path)
    seen, frame = False, pd.DataFrame()
    while True:
        try:
            frame, bad = next(chunks)
        except StopIteration:
            break
        except DataError:
            raise
        except _READ_ERRORS as exc:
            raise _unreadable(key, path, fmt, exc) from None
        if frame.empty and not bad:
            continue
        seen = True
        yield Table(key=key, path=path, format=fmt, frame=frame, bad=bad)
    if not seen:
        header = [c for c in frame.columns if c not in (SOURCE, ORDER)]
        what = "has columns but no rows" if header else "has no rows (only blank lines)"
        raise DataError(str(path), f"the file {what}, so {key} has no rows", _EMPTY_HINT)


def require_readable(key: str, path: Path) -> None:
    """A DataError unless `path` is a regular file or a folder (devices and FIFOs never end or block)."""
    if not path.exists():
        raise DataError(key, f"file not found: {path}", "relative paths resolve against the config file's folder")
    if not path.is_file() and not path.is_dir():
        raise DataError(key, f"{path} is not a regular file (a device, FIFO or socket)",
                        "copy the data into a regular file (csv, jsonl, parquet) or a saved HF dataset dir")


def detect_format(key: str, path: Path, configured: str = "auto") -> str:
    """`hf` for a directory, else by extension (a .gz/.bz2/.xz suffix is looked through)."""
    if path.is_dir():
        if configured not in ("auto", "hf"):
            raise DataError(key, f"{path} is a directory but data.format is {configured!r}", "set data.format: hf or auto")
        return "hf"
    if configured == "hf":
        raise DataError(key, f"{path} is a file, but data.format: hf expects a `save_to_disk` folder", "set data.format: auto")
    if configured != "auto":
        return configured
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _OPENERS:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        known = ", ".join(sorted(_FORMATS))
        raise DataError(key, f"cannot tell the format of {path.name}", f"use one of {known} (optionally .gz/.bz2/.xz), or set data.format")
    return fmt


def _open_binary(path: Path) -> IO[bytes]:
    opener = _OPENERS.get(path.suffix.lower(), open)
    return opener(path, "rb")


def _lines(f: IO[bytes], limit: int):
    """(line, too_long) per physical line; a line over `limit` bytes is cut there and the rest skipped unread."""
    while raw := f.readline(limit + 1):
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield raw, False
            continue
        while (rest := f.readline(2**20)) and not rest.endswith(b"\n"):
            pass  # the rest of an over-long line is skipped in bounded chunks, never held
        yield raw[:200], True


def _read_jsonl(path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> tuple[pd.DataFrame, list[BadRow]]:
    return _one(_jsonl_chunks(path, max_line_bytes))


def _one(chunks: Iterator[tuple[pd.DataFrame, list[BadRow]]]) -> tuple[pd.DataFrame, list[BadRow]]:
    """The single chunk a reader yields when it is not asked for batches."""
    return next(chunks)


def _jsonl_chunks(path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, chunk_rows: int | None = None
                  ) -> Iterator[tuple[pd.DataFrame, list[BadRow]]]:
    """(rows, bad rows) per `chunk_rows` rows read (good and bad together); one chunk for the whole file without."""
    records: list[dict] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    with _open_binary(path) as f:
        for lineno, (raw, too_long) in enumerate(_lines(f, max_line_bytes), 1):
            if chunk_rows and len(records) + len(bad) >= chunk_rows:
                yield _jsonl_frame(path, records, lines), bad
                records, lines, bad = [], [], []
            if too_long:
                detail = f"line longer than data.max_line_bytes ({max_line_bytes:,} bytes); not read"
                bad.append(BadRow(f"{path}:{lineno}", BadRowReason.TOO_LONG_LINE, detail, {"_line": _shown(raw)}, lineno))
                continue
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue  # blank lines separate nothing in JSON Lines; they are not rows
            source = f"{path}:{lineno}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                detail = f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}"
                bad.append(BadRow(source, BadRowReason.INVALID_UTF8, detail, {"_line": _shown(raw)}, lineno))
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                text = text.rstrip("\r\n")
                detail = f"invalid JSON: {exc}"
                if lineno == 1 and text.lstrip().startswith("["):
                    detail += " (this looks like a JSON array; write one JSON object per line)"
                bad.append(BadRow(source, BadRowReason.INVALID_JSON, detail, {"_line": text}, lineno))
                continue
            if not isinstance(obj, dict):
                detail = f"expected a JSON object per line, got {type(obj).__name__}"
                bad.append(BadRow(source, BadRowReason.NOT_AN_OBJECT, detail, {"_value": obj}, lineno))
                continue
            records.append(obj)
            lines.append(lineno)
    yield _jsonl_frame(path, records, lines), bad


def _jsonl_frame(path: Path, records: list[dict], lines: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(records, dtype=object)  # object: keep ints as ints and lists as lists, to judge them
    return _with_source(frame, [f"{path}:{n}" for n in lines], lines)


def _read_csv(path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> tuple[pd.DataFrame, list[BadRow]]:
    """CSV/TSV via the csv module, whose `line_num` gives the line each record starts on."""
    return _one(_csv_chunks(path, max_line_bytes))


def _csv_chunks(path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, chunk_rows: int | None = None
                ) -> Iterator[tuple[pd.DataFrame, list[BadRow]]]:
    """(rows, bad rows) per `chunk_rows` records read; one chunk for the whole file without."""
    csv.field_size_limit(max_line_bytes)  # long documents are normal (the default is 128 KiB), unbounded ones are not
    delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    rows: list[list[str]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    # surrogateescape: an undecodable byte becomes a lone surrogate in its own record, so the record that
    # holds it is known exactly (a strict decoder fails while reading ahead, on some earlier record).
    with io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header, end = next(reader, None), 0
            while header is not None and _is_blank(header):  # blank lines above the header are not the header
                end = reader.line_num
                header = next(reader, None)
            if header is None:
                yield pd.DataFrame(), []
                return
            _check_header(path, end + 1, header)
            end = reader.line_num
            for record in reader:
                if chunk_rows and len(rows) + len(bad) >= chunk_rows:
                    yield _csv_frame(path, header, rows, lines), bad
                    rows, lines, bad = [], [], []
                start, end = end + 1, reader.line_num
                if not record:
                    continue  # a blank line
                if _NOT_UTF8.search("".join(record)):
                    bad.append(_invalid_utf8(path, start, header, record))
                    continue
                if len(record) != len(header):
                    row = dict(zip(header, record, strict=False))
                    if len(record) > len(header):
                        row["_extra_fields"] = record[len(header):]
                    detail = f"{len(record)} fields, but the header has {len(header)} (an unquoted delimiter or quote?)"
                    bad.append(BadRow(f"{path}:{start}", BadRowReason.MALFORMED_ROW, detail, row, start))
                    continue
                rows.append(record)
                lines.append(start)
        except csv.Error as exc:
            hint = "check the quoting around this line"
            if "field larger than field limit" in str(exc):
                hint = f"a field over data.max_line_bytes ({max_line_bytes:,} bytes): {hint}, or raise the limit"
            raise DataError(f"{path}:{reader.line_num}", f"cannot parse CSV: {exc}", hint) from None
    yield _csv_frame(path, header, rows, lines), bad


def _csv_frame(path: Path, header: list[str], rows: list[list[str]], lines: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=header, dtype=object).replace("", None)  # an empty field is a missing value
    return _with_source(frame, [f"{path}:{n}" for n in lines], lines)


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8


def _invalid_utf8(path: Path, start: int, header: list[str], record: list[str]) -> BadRow:
    """The bad row for a CSV record holding bytes that are not UTF-8, naming the line and column of the first."""
    line, detail = start, "not valid UTF-8"
    for i, value in enumerate(record):
        hit = _NOT_UTF8.search(value)
        if hit is None:
            line += value.count("\n")  # a quoted field may span lines
            continue
        line += value[: hit.start()].count("\n")
        column = header[i] if i < len(header) else f"field {i + 1}"
        detail = f"not valid UTF-8: byte 0x{ord(hit.group()) - 0xDC00:02x} on line {line}, column {column!r}"
        break
    row = {str(k): _shown(v.encode("utf-8", "surrogateescape")) for k, v in zip(header, record, strict=False)}
    return BadRow(f"{path}:{start}", BadRowReason.INVALID_UTF8, detail, row, start)


def _shown(raw: bytes) -> str:
    """Bytes as text for the quarantine file, each undecodable byte shown as U+FFFD."""
    return raw.decode("utf-8", "replace").rstrip("\r\n")


def _is_blank(record: list[str]) -> bool:
    """A record from a line with nothing but whitespace and delimiters on it."""
    return not "".join(record).strip()


def _check_header(path: Path, line: int, header: list[str]) -> None:
    """`line` is the physical line the header starts on (1 unless blank lines come first)."""
    if _NOT_UTF8.search("".join(header)):
        raise DataError(f"{path}:{line}", "the header is not valid UTF-8", _UTF8_HINT)
    seen = {c for c in header if header.count(c) > 1}
    if seen:
        raise DataError(f"{path}:{line}", f"duplicate column names {sorted(seen)}", "rename the columns so each is unique")


def _read_parquet(path: Path) -> tuple[pd.DataFrame, list[BadRow]]:
    frame = pd.read_parquet(path)
    return _with_row_sources(frame, path), []


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[pd.DataFrame, list[BadRow]]]:
    """Record batches of `chunk_rows` rows, converted as `pd.read_parquet` converts the whole file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    start = 0
    for batch in file.iter_batches(batch_size=chunk_rows):
        frame = pa.Table.from_batches([batch], schema=file.schema_arrow).to_pandas().reset_index(drop=True)
        n = len(frame)
        yield _with_source(frame, [f"{path}#row={i}" for i in range(start, start + n)], list(range(start, start + n))), []
        start += n
    if not start:  # a parquet file with a schema and no rows
        yield file.schema_arrow.empty_table().to_pandas(), []


def _read_hf_dir(path: Path) -> tuple[pd.DataFrame, list[BadRow]]:
    splits_file = path / "dataset_dict.json"
    if splits_file.is_file():
        splits = json.loads(splits_file.read_text()).get("splits", [])
        raise DataError(
            str(path), f"is a DatasetDict with splits {splits}, not one dataset",
            f"point data.train/data.eval/data.test at its split folders, e.g. data.train: {path / (splits or ['train'])[0]}",
        )
    import datasets  # slow to import; only HF dirs need it

    ds = datasets.load_from_disk(str(path))  # a folder that is not a saved dataset: FileNotFoundError
    frame = ds.to_pandas()
    for name, feature in ds.features.items():
        if isinstance(feature, datasets.ClassLabel):  # ints on disk; the names are the labels
            frame[name] = frame[name].map(lambda i, f=feature: f.int2str(int(i)) if i is not None and i >= 0 else None)
    return _with_row_sources(frame, path), []


def _with_row_sources(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    n = len(frame)
    return _with_source(frame.reset_index(drop=True), [f"{path}#row={i}" for i in range(n)], list(range(n)))


def _with_source(frame: pd.DataFrame, sources: list[str], order: list[int]) -> pd.DataFrame:
    frame[SOURCE] = pd.Series(sources, index=frame.index, dtype=object)
    frame[ORDER] = pd.Series(order, index=frame.index, dtype="int64")
    return frame
