"""The report (data_card.json) accounts for every row and describes each split; writes are atomic."""

from __future__ import annotations

import json
import math

from tests.data.data_helpers import make_cfg

from tunesmith.data import prepare_data
from tunesmith.io import atomic_write_json


def _jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_data_card_accounts_for_every_row(tmp_path):
    rows = [{"text": f"w{i} " + "word " * (i % 5), "label": "ab"[i % 2], "lang": "en"} for i in range(40)]
    rows += [{"text": "", "label": "a"}, {"text": "dropped", "label": "junk"}]
    run = tmp_path / "run"
    bundle = prepare_data(make_cfg(path=_jsonl(tmp_path / "d.jsonl", rows), drop_labels=["junk"],
                                   slice_columns=["lang"], max_rows=30), run)
    card = json.loads((run / "data_card.json").read_text())
    assert card == json.loads(json.dumps(bundle.report.to_dict()))
    assert card["rows_read"] == 42
    assert card["rows_read"] == (card["rows_used"] + card["quarantined"] + sum(card["excluded_by_config"].values())
                                 + card["dropped_by_max_rows"])
    assert card["fingerprint"] == bundle.fingerprint
    assert card["sources"] == [{"key": "data.path", "path": str(tmp_path / "d.jsonl"), "format": "jsonl", "rows_read": 42}]
    assert set(card["text_length"]["train"]) == {"chars", "tokens"}
    assert set(card["text_length"]["train"]["tokens"]) == {"mean", "p50", "p95", "max"}
    assert 1 <= card["text_length"]["train"]["tokens"]["mean"] <= 5 and card["text_length"]["train"]["tokens"]["max"] <= 5
    assert list(bundle.train.columns) == ["text", "label", "_source", "lang"]
    assert sorted(p.name for p in run.iterdir()) == ["data_card.json", "quarantine.jsonl"]  # no temp files left


def test_without_run_dir_nothing_is_written_and_skipped_rows_are_warned_about(tmp_path):
    rows = [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(20)] + [{"text": "", "label": "a"}]
    bundle = prepare_data(make_cfg(path=_jsonl(tmp_path / "d.jsonl", rows)))
    assert bundle.report.quarantined == 1 and bundle.report.quarantine_path is None
    assert any("quarantine.jsonl" in w for w in bundle.report.warnings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


def test_atomic_write_json_writes_strict_json(tmp_path):
    import numpy as np

    path = atomic_write_json(tmp_path / "deep" / "m.json", {"a": math.nan, "b": [np.float32(1.5), np.int64(2)]})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]
