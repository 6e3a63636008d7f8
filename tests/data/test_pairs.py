"""Embedding pairs and regression targets in the data stage: bad rows with file:line, query-keyed splits."""

from __future__ import annotations

import json

import pytest
from tests.toy_pairs import make_pairs

from tunesmith.config import config_from_dict
from tunesmith.data import prepare_data
from tunesmith.data.errors import DataError


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(path, task="embedding", **data):
    return config_from_dict({"name": "p", "task": task, "data": {"path": str(path), **data}})


def test_malformed_pairs_are_quarantined_with_file_line_and_reason(tmp_path):
    rows = make_pairs(40).to_dict("records")
    rows[2] = {"query": "where is my parcel"}  # no positive
    rows[5] = {"query": "  ", "positive": "x"}  # empty query
    rows[7] = {"query": "q7", "positive": "p7", "negative": ["fine", 3]}  # a negative that is not text
    path = _write(tmp_path / "pairs.jsonl", rows)
    bundle = prepare_data(_cfg(path), tmp_path / "run")
    assert bundle.report.quarantined == 3
    assert bundle.report.quarantined_by_reason == {"empty_text": 1, "missing_positive": 1, "non_string_text": 1}
    records = [json.loads(x) for x in (tmp_path / "run/quarantine.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [f"{path}:3", f"{path}:6", f"{path}:8"]
    assert "no positive in column 'positive'" in records[0]["detail"]
    assert sum(len(f) for f in (bundle.train, bundle.eval, bundle.test)) == 37  # nothing else lost

    with pytest.raises(DataError, match=rf"{path}:3: no positive in column 'positive'"):
        prepare_data(_cfg(path, bad_rows="fail"))


def test_a_query_never_straddles_splits_and_negatives_are_lists(tmp_path):
    rows = make_pairs(60, negatives=True).to_dict("records")
    rows += [{"query": rows[i]["query"], "positive": f"another answer {i}", "negative": "one negative"} for i in range(20)]
    bundle = prepare_data(_cfg(_write(tmp_path / "p.jsonl", rows)))
    queries = {n: set(getattr(bundle, n)["query"]) for n in ("train", "eval", "test")}
    assert not (queries["train"] & queries["test"]) and not (queries["train"] & queries["eval"])
    assert not (queries["eval"] & queries["test"])
    assert bundle.report.overlap == {"train/eval": 0, "train/test": 0, "eval/test": 0}
    assert all(isinstance(n, list) for n in bundle.train["negatives"])
    assert {len(n) for n in bundle.train["negatives"]} == {1}  # a single `negative` string becomes a 1-list
    assert bundle.labels == [] and bundle.train["score"].isna().all()
    assert bundle.train["text"].iloc[0].startswith("<query>\n")  # the canonical text the fingerprint covers


def test_scored_pairs_need_numeric_scores_and_configured_columns(tmp_path):
    rows = [{"s1": f"text {i}", "s2": f"other {i}", "sim": i / 40} for i in range(40)]
    rows[4]["sim"] = "high"
    path = _write(tmp_path / "sts.jsonl", rows)
    cfg = _cfg(path, query_column="s1", positive_column="s2", score_column="sim")
    bundle = prepare_data(cfg, tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {"invalid_score": 1}
    assert bundle.train["score"].notna().all()
    with pytest.raises(DataError, match="no column 'query' .data.query_column."):
        prepare_data(_cfg(path))


def test_regression_targets_must_be_finite_numbers(tmp_path):
    lines = ["text,stars"] + [f"review {i},{i % 5 + 0.5}" for i in range(40)]
    lines[3] = "review two,n/a"
    lines[9] = "review eight,inf"
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = _cfg(path, task="regression", label_column="stars")
    assert cfg.data.split.stratify is False and cfg.training.metric == "rmse"
    bundle = prepare_data(cfg, tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {"invalid_target": 2}
    bad = [json.loads(x) for x in (tmp_path / "run/quarantine.jsonl").read_text().splitlines()]
    assert [b["source"] for b in bad] == [f"{path}:4", f"{path}:10"] and "'n/a', not a finite number" in bad[0]["detail"]
    assert bundle.train["target"].dtype == "float64" and bundle.labels == []
    with pytest.raises(DataError, match=rf"{path}:4: the target in column 'stars' is 'n/a'"):
        prepare_data(_cfg(path, task="regression", label_column="stars", bad_rows="fail"))


def test_pii_redact_rewrites_the_query_positive_and_negatives_embedding_trains_on(tmp_path):
    rows = make_pairs(40).to_dict("records")
    rows[0] = {"query": "mail bob.smith@example.com about it", "positive": "card 4111 1111 1111 1111 works",
               "negative": ["call 10.0.0.12 now"]}
    path = _write(tmp_path / "pairs.jsonl", rows)
    before = path.read_bytes()
    bundle = prepare_data(_cfg(path, checks={"pii": {"policy": "redact", "presidio": "off"}}), tmp_path / "run")
    frame = next(f for f in (bundle.train, bundle.eval, bundle.test) if f["_source"].str.endswith(":1").any())
    row = frame[frame["_source"].str.endswith(":1")].iloc[0]
    assert row["query"] == "mail <EMAIL> about it" and row["positive"] == "card <CREDIT_CARD> works"
    assert list(row["negatives"]) == ["call <IP_ADDRESS> now"]
    assert "example.com" not in row["text"] and "4111" not in row["text"]
    assert path.read_bytes() == before
