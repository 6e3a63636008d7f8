"""The data stage: load the configured files, sort out bad rows, split, fingerprint and report.

    bundle = prepare_data(load_config("examples/sentiment/config.yaml"), run_dir)

With a run_dir it also writes run_dir/data_card.json and, when rows were quarantined, quarantine.jsonl.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tunesmith.config import BadRowPolicy, CheckPolicy, Config, DataConfig
from tunesmith.data import stream
from tunesmith.data.bundle import DataBundle
from tunesmith.data.checks import ChecksOutcome, DataChecksFailed, run_checks, scan_pii
from tunesmith.data.dedup import NearPairs, near_duplicate_groups, near_pairs_by_digest
from tunesmith.data.errors import DataError
from tunesmith.data.fingerprint import SPLITS, dataset_fingerprint, row_digests, split_keys, text_digests
from tunesmith.data.leakage import TEXT_DIGEST, Leakage, find_leakage
from tunesmith.data.load import Table
from tunesmith.data.report import DataReport, text_length
from tunesmith.data.schema import (
    LABEL,
    ORDER,
    SOURCE,
    SPLIT_TEXT,
    TEXT,
    BadRow,
    CheckedTable,
    label_case_conflicts,
)
from tunesmith.data.split import carve, subsample
from tunesmith.families import get as family
from tunesmith.io import atomic_write_json, atomic_write_text, to_jsonable

DIGEST = "_digest"  # internal column: the row's content hash


@dataclass
class FilePart:
    """One configured file, read and checked; `name` is "all" for data.path, else its split."""

    name: str
    table: Table
    checked: CheckedTable


def prepare_data(cfg: Config, run_dir: Path | None = None, *, load_frames: bool = True) -> DataBundle:
    """Turn `cfg.data` into train/eval/test frames, the label list, a fingerprint and a DataReport.

    Large files (or `data.batch_rows`) are read and checked in batches (`tunesmith.data.stream`): the same checks
    and the same report, holding per row only hashes, lengths and labels. The splits are then written as parquet
    (`report.split_files`: run_dir/splits/, else a temporary folder) and read back as the bundle's frames, unless
    `load_frames` is False (`tunesmith validate`): then the frames are empty and the files are the splits.

    Raises:
        DataError: naming file:line or the config key, with a hint.
    """
    size = stream.batch_rows(cfg, [cfg.resolve_path(t) for _, _, t in _configured_files(cfg.data)])
    if size is None:
        return _prepare(cfg, run_dir, None, 0, load_frames)
    with tempfile.TemporaryDirectory(prefix="tunesmith-data-", dir=run_dir) as folder:  # the spool
        return _prepare(cfg, run_dir, Path(folder), size, load_frames)


def _prepare(cfg: Config, run_dir: Path | None, folder: Path | None, size: int, load_frames: bool) -> DataBundle:
    d, task = cfg.data, family(cfg.task)
    spool = stream.Spool(folder, cfg, scan_pii) if folder is not None else None
    try:
        parts = [_read(cfg, key, name, text, spool, size) for key, name, text in _configured_files(d)]
    finally:
        if spool is not None:
            spool.close()
    _release(spool)
    bad = [b for p in parts for b in p.checked.bad]
    quarantine_path = _write_quarantine(Path(run_dir), bad) if bad and run_dir is not None else None
    for p in parts:
        _require_rows(p)
    if task.labeled and d.labels is None:
        _check_label_case(parts, task.label_column)
    if spool is None:
        near = near_pairs(cfg, parts)
    else:
        near = stream.near_pairs(cfg, [p.checked.rows for p in parts], spool, size)
        _release(spool)
    splits, dropped, warnings = _split(cfg, {p.name: p.checked.rows for p in parts}, near)
    if spool is not None:  # the splits hold the rows now; keep one copy of the lean rows, not two
        for p in parts:
            p.checked.rows = p.checked.rows.iloc[:0]
        _release(spool)
    warnings += [w for p in parts for w in p.checked.warnings]
    labels, label_warnings = task.label_set(splits, cfg, parts)
    warnings += label_warnings
    leakage = _leakage(splits, parts)
    warnings += leakage.warnings
    _release(spool)
    if task.checks_on_full_text:  # the split kept each key (a query) in one split; the checks judge whole rows,
        splits = {n: f.assign(**{TEXT_DIGEST: text_digests(f[TEXT])}) for n, f in splits.items()}  # so the
        near = None  # near pairs, keyed by the split key, do not apply
    # the data gates: after the split, before training
    checks = run_checks(cfg, splits, _split_names(parts), run_dir, near, spool)
    splits, warnings = checks.splits, warnings + checks.warnings
    _release(spool)
    if checks.quarantined and run_dir is not None:
        quarantine_path = _write_quarantine(Path(run_dir), bad, checks.quarantined)
    if bad and run_dir is None:
        warnings.append(f"{len(bad)} bad rows were skipped; pass a run_dir to keep them in quarantine.jsonl")
    fingerprint = dataset_fingerprint({n: list(s[DIGEST]) for n, s in splits.items()}, labels, d.slice_columns)
    if spool is None:
        frames = {n: _public(s, d, extra=task.bundle_columns) for n, s in splits.items()}
        files: dict[str, str] = {}
    else:
        frames, files = _written(splits, d, task, spool, run_dir, size, load_frames)
    warnings += task.check_splits(frames, cfg)
    report = _report(parts, frames, labels, fingerprint, quarantine_path, dropped, leakage, warnings, checks, task)
    keep = run_dir is not None and not load_frames  # else the files are in the spool's folder, removed on return
    report.split_files = files if keep else {}
    if run_dir is not None:
        atomic_write_json(Path(run_dir) / "data_card.json", report.to_dict())
    if checks.violations:
        raise DataChecksFailed(checks.violations, report)
    if files:  # the texts are in the files: read back, or (validate) left there, the bundle's frames empty
        frames = {n: pd.read_parquet(f) if load_frames else pq.read_schema(f).empty_table().to_pandas() for n, f in files.items()}
    return DataBundle(frames["train"], frames["eval"], frames["test"], labels, fingerprint, report)


def _release(spool: stream.Spool | None) -> None:
    if spool is not None:  # read in batches: keep the peak to the largest step, not the sum of them
        stream.release_memory()


def _written(splits: dict[str, pd.DataFrame], d: DataConfig, task, spool: stream.Spool, run_dir: Path | None,
             size: int, load_frames: bool) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The splits written as parquet (texts from the spool); the lean frames, sorted, stand in for the report."""
    folder = Path(run_dir) / "splits" if run_dir is not None and not load_frames else spool.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    columns = [TEXT, LABEL, SOURCE] + [c for c in d.slice_columns if c not in (TEXT, LABEL)] + list(task.bundle_columns)
    frames, files = {}, {}
    for name, rows in splits.items():
        stream.refresh_lengths(rows)
        rows = rows.sort_values(ORDER, kind="stable").reset_index(drop=True)
        files[name] = stream.write_split(folder / f"{name}.parquet", rows, columns, spool, size)
        frames[name] = rows
    return frames, files


def _configured_files(d: DataConfig) -> list[tuple[str, str, str]]:
    if d.path:
        return [("data.path", "all", d.path)]
    return [(f"data.{n}", n, getattr(d, n)) for n in SPLITS if getattr(d, n)]


def _read(cfg: Config, key: str, name: str, path_text: str, spool: stream.Spool | None = None, size: int = 0
          ) -> FilePart:
    if spool is not None:
        return FilePart(name, *stream.read_in_batches(cfg, key, cfg.resolve_path(path_text), spool, size))
    task = family(cfg.task)
    table = task.read_table(key, cfg.resolve_path(path_text), cfg)
    checked = task.check_rows(table, cfg)
    if cfg.data.bad_rows is BadRowPolicy.FAIL and checked.bad:
        raise checked.bad[0].error()
    task.finish_rows(checked, cfg)  # causal-lm: data.too_long decides, whatever data.bad_rows says
    checked.rows[DIGEST] = row_digests(checked.rows, cfg.data.slice_columns)
    keyed = SPLIT_TEXT if SPLIT_TEXT in checked.rows else TEXT  # embedding: a query never straddles splits
    checked.rows[TEXT_DIGEST] = text_digests(checked.rows[keyed])
    return FilePart(name, table, checked)


def _write_quarantine(run_dir: Path, bad: list[BadRow], flagged: list[dict] = ()) -> str:
    records = [b.to_record() for b in bad] + list(flagged)  # bad rows, then rows a data check dropped
    lines = (json.dumps(r, ensure_ascii=False, default=to_jsonable) + "\n" for r in records)
    return str(atomic_write_text(run_dir / "quarantine.jsonl", "".join(lines)))


def _require_rows(part: FilePart) -> None:
    if not part.checked.rows.empty:
        return
    table, checked = part.table, part.checked  # load_table has refused files without rows
    why = Counter(b.reason.value for b in checked.bad)
    why.update({f"excluded by data.drop_labels ({k})": v for k, v in checked.excluded.items()})
    raise DataError(
        str(table.path), f"none of its {table.rows_read} rows is usable: {dict(why)}",
        "see quarantine.jsonl in the run dir for each row and its reason",
    )


def _check_label_case(parts: list[FilePart], column: str | None) -> None:
    column = column or LABEL
    rows = pd.concat([p.checked.rows[[column, SOURCE]] for p in parts], ignore_index=True)
    if column != LABEL:  # label lists: one row per (label, row), the labels inside the lists are compared
        rows = rows.explode(column).dropna().rename(columns={column: LABEL})
    first = rows.drop_duplicates(LABEL).set_index(LABEL)[SOURCE]
    groups = label_case_conflicts(first.index)
    if groups:
        shown = "; ".join(" vs ".join(f"{label!r} (first at {first[label]})" for label in g) for g in groups)
        raise DataError(
            "data.label_column", f"labels that differ only by case or whitespace would become separate classes: {shown}",
            "normalize the labels in the data, or list the intended ones in data.labels (other spellings become bad rows)",
        )


def _split(cfg: Config, rows: dict[str, pd.DataFrame], near: NearPairs | None = None
           ) -> tuple[dict[str, pd.DataFrame], int, list[str]]:
    """train/eval/test frames, rows dropped by data.max_rows, and warnings."""
    d, warnings = cfg.data, []
    pool = rows["all"] if d.path else rows["train"]
    dropped = 0
    if d.max_rows:
        keys = split_keys(pool[DIGEST].tolist(), cfg.seed, "sample")
        sampled, w = subsample(pool, keys, d.max_rows, stratify=d.split.stratify)
        dropped, pool = len(pool) - len(sampled), sampled
        warnings += w
    shares = {n: getattr(d.split, n) for n in ("eval", "test") if n not in rows}
    splits = {n: rows[n] for n in ("eval", "test") if n in rows}
    if shares:
        by_text = [bytes.fromhex(h) for h in pool[TEXT_DIGEST]]  # the text alone: identical texts share a key
        groups = pd.factorize(pool[TEXT_DIGEST])[0]
        groups = _near_groups(cfg, pool, groups, near)
        carved, w = carve(pool, split_keys(by_text, cfg.seed, "split"), groups, shares, stratify=d.split.stratify)
        splits.update(carved)
        warnings += w
    else:
        splits["train"] = pool
    return {n: splits[n] for n in SPLITS}, dropped, warnings


def near_pairs(cfg: Config, parts: list[FilePart]) -> NearPairs | None:
    """Near-duplicate pairs over every configured file's rows, computed once for the split and the checks."""
    c = cfg.data.checks
    if not c.duplicates.near.enabled:
        return None
    if c.duplicates.policy is CheckPolicy.OFF and (c.leakage.policy is CheckPolicy.OFF or not c.leakage.near):
        return None
    return near_pairs_by_digest([p.checked.rows for p in parts], digest=TEXT_DIGEST, text=TEXT,
                                **c.duplicates.near.model_dump(exclude={"enabled"}))


def _near_groups(cfg: Config, pool: pd.DataFrame, groups: np.ndarray, near: NearPairs | None) -> np.ndarray:
    """Near-duplicate texts move together too, so the splits tunesmith carves never leak near-duplicates."""
    leak = cfg.data.checks.leakage
    if near is None or not leak.near or leak.policy is CheckPolicy.OFF:
        return groups
    return near_duplicate_groups(pool[TEXT_DIGEST], groups, near)  # a Series: no 64-wide unicode array per row


def _split_names(parts: list[FilePart]) -> dict[str, str]:
    """How each split is named in a message: "data.test (test.jsonl)" or "eval (split from data.csv)"."""
    names = {p.name: f"{p.table.key} ({p.table.path})" for p in parts}
    pool = next(p for p in parts if p.name in ("all", "train"))
    return {n: names.get(n) or f"{n} (split from {pool.table.path})" for n in SPLITS}


def _leakage(splits: dict[str, pd.DataFrame], parts: list[FilePart]) -> Leakage:
    """Texts shared by two splits, and conflicting labels in the rows of data.path / data.train."""
    names = {p.name: f"{p.table.key} ({p.table.path})" for p in parts}
    pool = next(p for p in parts if p.name in ("all", "train"))
    where = _split_names(parts)
    columns = [LABEL, ORDER, SOURCE, TEXT_DIGEST]  # what find_leakage reads
    training = pd.concat([splits[n][columns] for n in SPLITS if n not in names or n == pool.name], ignore_index=True)
    return find_leakage(splits, where, training, names[pool.name])


def _public(rows: pd.DataFrame, d: DataConfig, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """The contract's columns in the contract's order (then the family's), rows in file order."""
    columns = [TEXT, LABEL, SOURCE] + [c for c in d.slice_columns if c not in (TEXT, LABEL)]
    columns += list(extra)
    return rows.sort_values(ORDER, kind="stable")[columns].reset_index(drop=True)


QUARANTINE_EXAMPLES = 5  # quarantined rows shown on the console, where they came from and why


def _report(
    parts: list[FilePart], frames: dict[str, pd.DataFrame], labels: list[str], fingerprint: str,
    quarantine_path: str | None, dropped: int, leakage: Leakage, warnings: list[str], checks: ChecksOutcome, task,
) -> DataReport:
    bad = [b for p in parts for b in p.checked.bad]
    reasons = Counter(b.reason.value for b in bad) + checks.quarantined_by_reason()
    excluded: Counter = sum((p.checked.excluded for p in parts), Counter())
    return DataReport(
        sources=[{"key": p.table.key, "path": str(p.table.path), "format": p.table.format, "rows_read": p.table.rows_read}
                 for p in parts],
        rows_read=sum(p.table.rows_read for p in parts),
        rows_used=sum(len(f) for f in frames.values()),
        quarantined=len(bad) + len(checks.quarantined),
        truncated=sum(p.checked.truncated for p in parts),
        quarantined_by_reason=dict(sorted(reasons.items())),
        quarantine_path=quarantine_path,
        excluded_by_config=dict(sorted(excluded.items())),
        dropped_by_max_rows=dropped,
        labels=labels,
        split_sizes={n: len(f) for n, f in frames.items()},
        label_distribution={n: task.label_distribution(f, labels) for n, f in frames.items()},
        text_length={n: text_length(f) for n, f in frames.items()},
        fingerprint=fingerprint,
        overlap=leakage.overlap,
        overlap_examples=leakage.overlap_examples,
        conflicting_duplicates=leakage.conflicting_duplicates,
        warnings=warnings,
        checks=checks.findings,
        quarantine_examples=[f"{r['source']}: {r['reason']}: {str(r['detail'])[:200]}"
                             for r in ([b.to_record() for b in sorted(bad, key=lambda b: b.order)]
                                       + list(checks.quarantined))[:QUARANTINE_EXAMPLES]],
    )
