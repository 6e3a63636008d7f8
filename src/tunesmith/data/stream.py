"""The data stage in batches: each batch is read, checked, hashed and scanned, then its texts leave memory.

    spool = Spool(folder, cfg); part_rows = read_in_batches(cfg, key, path, spool)

Per usable row the stage keeps a lean frame: label, `_source`, `_order`, the slice values, the row and text
hashes, the lengths and a row id; the texts go to a spool parquet file (one column, written batch by batch).
The spool is read again only in batches: to key the distinct texts for near-duplicate LSH (datasketch MinHash
band keys), for the few texts a check asks for (near-duplicate candidates to confirm, the label-issue sample),
and to write the splits. PII is scanned per batch; only the rows with findings keep their text.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tunesmith.config import BadRowPolicy, CheckPolicy, Config
from tunesmith.data import pii
from tunesmith.data.dedup import NearPairs, band_keys, candidate_pairs, confirm_pairs, lsh_bands
from tunesmith.data.errors import DataError
from tunesmith.data.fingerprint import row_digests, text_digests
from tunesmith.data.leakage import TEXT_DIGEST
from tunesmith.data.load import Table, iter_tables
from tunesmith.data.report import CHARS, TOKENS
from tunesmith.data.schema import SOURCE, TEXT, BadRow, CheckedTable
from tunesmith.families import get as family

ROW = "_row"  # the row's id: its position in the spool
DIGEST = "_digest"
AUTO_BATCH_ROWS = 20_000
KEY_BATCH_ROWS = 20_000  # texts MinHashed at once: shingle sets and signatures are ~6 KB a text while they live
AUTO_BYTES = 64 * 2**20  # data files larger than this are read in batches when data.batch_rows is unset


def release_memory() -> None:
    """Hand freed memory back to the OS between steps (Arrow's pool and glibc keep it), so one step's
    temporaries do not stack on the next step's in the peak RSS."""
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def batch_rows(cfg: Config, paths: list[Path]) -> int | None:
    """Rows per batch, or None to read each file whole (data.batch_rows; unset: by file size and the task).

    Raises:
        DataError: data.batch_rows is set but the task's row checks need the whole file.
    """
    configured, task = cfg.data.batch_rows, family(cfg.task)
    if configured == 0:
        return None
    if configured is None:
        big = sum(p.stat().st_size for p in paths if p.is_file()) > AUTO_BYTES
        return AUTO_BATCH_ROWS if big and task.streams_rows and all(p.is_file() for p in paths) else None
    if not task.streams_rows:
        raise DataError("data.batch_rows", f"task {cfg.task} checks its rows across the whole file, not in batches",
                        "remove data.batch_rows (or set it to 0)")
    return configured


class Spool:
    """The usable rows' texts in one parquet file, in row-id order, plus what per-batch scans found in them."""

    def __init__(self, folder: Path, cfg: Config, scan_pii: Callable[[Config, list[str]], list] | None = None):
        self.path, self.cfg, self.scan_pii = Path(folder) / "texts.parquet", cfg, scan_pii  # checks.scan_pii
        self.rows = 0
        self.peak_batch = 0  # most rows held at once while reading (the batch size, honoured)
        self._writer: pq.ParquetWriter | None = None
        self.pii_found: dict[int, list[pii.Finding]] = {}  # row id -> findings (rows with PII only)
        self.pii_texts: dict[int, str] = {}

    def add(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Spool the texts of checked rows; return the lean rows (TEXT kept only as a None placeholder)."""
        texts = rows[TEXT].astype("str")
        ids = np.arange(self.rows, self.rows + len(rows), dtype=np.int64)
        self.rows += len(rows)
        self.peak_batch = max(self.peak_batch, len(rows))
        batch = pa.table({TEXT: pa.array(texts.tolist(), type=pa.large_string())})
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, batch.schema)
        self._writer.write_table(batch)
        if self.scan_pii is not None and self.cfg.data.checks.pii.policy is not CheckPolicy.OFF:
            for i, found in enumerate(self.scan_pii(self.cfg, texts.tolist())):
                if found:
                    self.pii_found[int(ids[i])], self.pii_texts[int(ids[i])] = found, texts.iat[i]
        lean = rows.drop(columns=[TEXT])
        lean.insert(0, TEXT, pd.Series([None] * len(rows), index=rows.index, dtype=object))
        lean[SOURCE] = lean[SOURCE].astype("str")  # one Arrow buffer, not a Python string per row
        lean[DIGEST] = pd.array(lean[DIGEST].tolist(), dtype=pd.ArrowDtype(pa.binary()))  # likewise the row hashes
        lean[ROW] = ids
        lean[CHARS] = texts.str.len().to_numpy(np.int64)
        lean[TOKENS] = texts.str.count(r"\S+").to_numpy(np.int64)
        return lean

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def batches(self, size: int) -> Iterator[tuple[int, pa.Array]]:
        """(first row id, texts) per batch of the spool."""
        if not self.rows:
            return
        start = 0
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=size):
            yield start, batch.column(0)
            start += len(batch)

    def texts(self, ids: np.ndarray, size: int = AUTO_BATCH_ROWS) -> dict[int, str]:
        """The texts of row `ids` (a few: candidates, samples), read batch by batch."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        found: dict[int, str] = {}
        for start, column in self.batches(size):
            lo, hi = np.searchsorted(ids, [start, start + len(column)])
            if hi > lo:
                picked = column.take(pa.array(ids[lo:hi] - start)).to_pylist()
                found.update(zip(ids[lo:hi].tolist(), picked, strict=True))
        return found

    def fill_texts(self, frame: pd.DataFrame, positions: list[int]) -> None:
        """Put the texts of the rows at `positions` of `frame` back in TEXT (those without one)."""
        empty = [p for p in positions if frame[TEXT].iat[p] is None]
        if empty:
            rows = frame[ROW].to_numpy()[empty]
            texts = self.texts(rows)
            frame.loc[empty, TEXT] = [texts[int(r)] for r in rows]

    def pii_hits(self, frame: pd.DataFrame) -> dict[int, list[pii.Finding]]:
        """{position: findings} for the rows of `frame` whose text has PII; their texts are put back in TEXT."""
        if not self.pii_found:
            return {}
        rows = frame[ROW].to_numpy()
        positions = np.flatnonzero(np.isin(rows, np.fromiter(self.pii_found, dtype=np.int64)))
        fill = [p for p in positions.tolist() if frame[TEXT].iat[p] is None]
        if fill:
            frame.loc[fill, TEXT] = [self.pii_texts[int(rows[p])] for p in fill]
        return {int(p): self.pii_found[int(rows[p])] for p in positions}


def read_in_batches(cfg: Config, key: str, path: Path, spool: Spool, size: int) -> tuple[Table, CheckedTable]:
    """`task.read_table` + `check_rows` + `finish_rows` + the row hashes, batch by batch (see prepare._read)."""
    task, d = family(cfg.task), cfg.data
    bad: list[BadRow] = []
    excluded: Counter = Counter()
    lean: list[pd.DataFrame] = []
    truncated, warnings, seen, fmt = 0, [], 0, ""
    for table in iter_tables(key, path, d.format, batch_rows=size, max_line_bytes=d.max_line_bytes):
        seen, fmt = seen + table.rows_read, table.format
        checked = task.check_rows(table, cfg)
        if d.bad_rows is BadRowPolicy.FAIL and checked.bad:
            raise checked.bad[0].error()
        task.finish_rows(checked, cfg)
        rows = checked.rows
        rows[DIGEST] = row_digests(rows, d.slice_columns)
        rows[TEXT_DIGEST] = text_digests(rows[TEXT])
        lean.append(spool.add(rows))
        bad += checked.bad
        excluded += checked.excluded
        truncated += checked.truncated
        warnings += checked.warnings
    rows = pd.concat(lean, ignore_index=True)
    rows[SOURCE] = rows[SOURCE].astype("str")
    whole = Table(key=key, path=path, format=fmt, frame=pd.DataFrame(index=pd.RangeIndex(seen)))
    return whole, CheckedTable(rows, bad, excluded, truncated, warnings)


def near_pairs(cfg: Config, frames: list[pd.DataFrame], spool: Spool, size: int) -> NearPairs | None:
    """`near_pairs_by_digest` over the distinct texts (first occurrences, in row order), keyed from the spool."""
    c = cfg.data.checks
    dup, leak = c.duplicates, c.leakage
    if not dup.near.enabled or CheckPolicy.OFF == dup.policy == dup.conflicts == leak.policy:
        return None
    near = dup.near.model_dump(exclude={"enabled"})
    lean = pd.concat([f[[TEXT_DIGEST, ROW]] for f in frames], ignore_index=True).drop_duplicates(TEXT_DIGEST)
    firsts = lean[ROW].to_numpy()  # row id of each distinct text, in the order near_pairs_by_digest sees them
    bands = lsh_bands(near["threshold"], near["num_perm"])[0]
    files = [spool.path.parent / f"band_{b}.u64" for b in range(bands)]  # one file per band: read a band at a time
    handles = [f.open("wb") for f in files]
    kept = 0
    try:
        for start, column in spool.batches(min(size, KEY_BATCH_ROWS)):
            lo, hi = np.searchsorted(firsts, [start, start + len(column)])  # first occurrences' row ids only grow
            if hi > lo:
                texts = column.take(pa.array(firsts[lo:hi] - start)).to_pylist()
                keys = band_keys(texts, **{k: near[k] for k in ("threshold", "num_perm", "ngram", "seed")})
                for b, h in enumerate(handles):
                    h.write(np.ascontiguousarray(keys[:, b]).tobytes())
                kept += hi - lo
    finally:
        for h in handles:
            h.close()
    assert kept == len(firsts), "the spool holds every usable row"
    found = _confirm([_BandFile(f) for f in files], firsts, spool, near)
    for f in files:
        f.unlink()
    d = lean[TEXT_DIGEST]
    a, b = d.iloc[found.pairs[:, 0]].to_numpy(), d.iloc[found.pairs[:, 1]].to_numpy()  # the pairs' hashes only
    stats = {**near, "bands": found.bands, "rows_per_band": found.rows_per_band, "candidates": found.candidates,
             "confirmed_pairs": len(found.pairs)}
    return NearPairs(a, b, found.similarity, stats)


class _BandFile:
    """One band's keys on disk, read when the candidate search reaches that band (`np.asarray`)."""

    def __init__(self, path: Path):
        self.path = path

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.fromfile(self.path, dtype=np.uint64)


def _confirm(bands: list, firsts: np.ndarray, spool: Spool, near: dict[str, Any]):
    found = candidate_pairs(bands)
    wanted = np.unique(found)  # indices into firsts of the texts that are candidates
    by_row = spool.texts(firsts[wanted])
    texts = {int(i): by_row[int(firsts[i])] for i in wanted}
    return confirm_pairs(found, texts, threshold=near["threshold"], num_perm=near["num_perm"], ngram=near["ngram"])


def fill_label_sample(cfg: Config, splits: dict[str, pd.DataFrame], spool: Spool, run_dir: Path | None) -> None:
    """Put back the texts of exactly the rows the label-issue check will sample (`DataFrame.sample` picks positions
    from the row count and the seed alone), so it judges the same rows as on the whole frames."""
    c = cfg.data.checks.label_issues
    n = sum(len(f) for f in splits.values())
    if run_dir is None or not c.enabled or n < c.min_rows:
        return
    positions = np.arange(n)
    if n > c.max_rows:
        positions = pd.DataFrame(index=pd.RangeIndex(n)).sample(n=c.max_rows, random_state=cfg.seed).index.to_numpy()
    offsets = np.cumsum([0] + [len(f) for f in splits.values()])
    chosen = {name: np.sort(positions[(positions >= lo) & (positions < hi)] - lo)
              for name, lo, hi in zip(splits, offsets[:-1], offsets[1:], strict=True)}
    ids = np.concatenate([splits[n][ROW].to_numpy()[p] for n, p in chosen.items()])
    texts = spool.texts(ids)
    for name, pos in chosen.items():
        frame = splits[name]
        pos = [int(p) for p in pos if frame[TEXT].iat[p] is None]  # redacted rows keep their redacted text
        if pos:
            frame.loc[pos, TEXT] = [texts[int(r)] for r in frame[ROW].to_numpy()[pos]]


def refresh_lengths(frame: pd.DataFrame) -> None:
    """Lengths of the rows whose text a check rewrote (PII redaction)."""
    held = frame[TEXT].notna().to_numpy()
    if held.any():
        texts = frame.loc[held, TEXT].astype("str")
        frame.loc[held, CHARS] = texts.str.len().to_numpy(np.int64)
        frame.loc[held, TOKENS] = texts.str.count(r"\S+").to_numpy(np.int64)


def write_split(path: Path, rows: pd.DataFrame, columns: list[str], spool: Spool, size: int) -> str:
    """The split's public columns as parquet, written batch by batch in row order; texts from the spool, or the
    rewritten text a check left in TEXT."""
    ids = rows[ROW].to_numpy()
    if len(ids) and (np.diff(ids) < 0).any():
        raise AssertionError("a split's rows are in file order, so their spool ids never decrease")
    others = [c for c in columns if c != TEXT]
    schema = None
    writer: pq.ParquetWriter | None = None
    try:
        for start, column in spool.batches(size):
            lo, hi = np.searchsorted(ids, [start, start + len(column)])
            if hi <= lo:
                continue
            part = rows.iloc[lo:hi]
            texts = column.take(pa.array(ids[lo:hi] - start)).to_pylist()
            held = part[TEXT].to_numpy()
            texts = [h if h is not None else t for h, t in zip(held, texts, strict=True)]
            frame = pd.DataFrame({TEXT: texts}).join(part[others].reset_index(drop=True))
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table)
        if writer is None:  # an empty split still gets its file
            pq.write_table(pa.Table.from_pandas(rows[columns].iloc[:0].astype({TEXT: "str"}), preserve_index=False), path)
    finally:
        if writer is not None:
            writer.close()
    return str(path)
