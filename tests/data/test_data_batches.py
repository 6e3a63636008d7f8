"""Reading and checking in batches (data.batch_rows) gives exactly what the whole-file path gives, a batch at a time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from tests.data.data_helpers import make_cfg

from tunesmith.data import prepare_data, stream

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from validate_scale import make_rows  # noqa: E402  (the benchmark's generator: dups, near-dups, PII planted)

CHECKS = {"pii": {"policy": "redact", "presidio": "off"}, "duplicates": {"policy": "drop"},
          "leakage": {"policy": "warn"}, "label_issues": {"enabled": False}}


def _write_csv(path: Path) -> Path:
    rows = make_rows(20_000, seed=7)
    rows.loc[[10, 4_321], "text"] = "   "  # empty texts: bad rows in two different batches
    rows.loc[[77, 15_000], "label"] = None  # missing labels
    rows.to_csv(path, index=False)
    with path.open("a") as f:
        f.write('"a row with, too many",fields,here\n')  # malformed: a bad row from the reader itself
    return path


def _run(path: Path, run_dir: Path, batch_rows: int):
    run_dir.mkdir()
    cfg = make_cfg(path=path, batch_rows=batch_rows, checks=CHECKS)
    bundle = prepare_data(cfg, run_dir)
    report = bundle.report.to_dict()
    report.pop("quarantine_path")
    return bundle, report, (run_dir / "quarantine.jsonl").read_text()


def test_batches_give_the_whole_file_report_quarantine_and_splits_holding_one_batch(tmp_path, monkeypatch):
    path = _write_csv(tmp_path / "rows.csv")
    held: list[int] = []
    reader = stream.iter_tables

    def counted(*args, **kwargs):
        for table in reader(*args, **kwargs):
            held.append(table.rows_read)
            yield table

    monkeypatch.setattr(stream, "iter_tables", counted)
    whole, whole_report, whole_quarantine = _run(path, tmp_path / "whole", 0)
    assert held == []  # data.batch_rows: 0 reads the file whole
    batched, report, quarantine = _run(path, tmp_path / "batched", 1_000)

    assert len(held) == 21 and max(held) == 1_000 and sum(held) == 20_001  # the batch size is honoured
    assert report == whole_report  # every count, finding, warning, example and the fingerprint
    assert quarantine == whole_quarantine  # the same rows, reasons, details and whole texts, in the same order
    reasons = {json.loads(line)["reason"] for line in quarantine.splitlines()}
    assert {"empty_text", "missing_label", "malformed_row", "duplicate", "near_duplicate"} <= reasons
    assert report["checks"]["pii"]["redacted_rows"] > 0 and report["checks"]["duplicates"]["near_lsh"]["confirmed_pairs"]
    for name in ("train", "eval", "test"):  # the same rows, in the same order, with the redacted texts
        a, b = whole.split(name), batched.split(name)
        pd.testing.assert_frame_equal(a.astype(object), b.astype(object))
    assert batched.train["text"].str.contains("<EMAIL>").any()

    lean = prepare_data(make_cfg(path=path, batch_rows=1_000, checks=CHECKS), tmp_path / "batched",
                        load_frames=False)  # `tunesmith validate`: the splits stay files, nothing is loaded
    assert lean.train.empty and lean.report.fingerprint == whole.fingerprint
    written = pd.read_parquet(lean.report.split_files["test"])
    pd.testing.assert_frame_equal(written.astype(object), whole.test.astype(object))
