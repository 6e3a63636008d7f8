"""Multi-label rows in the data stage: JSON lists and separated CSV strings, bad label lists quarantined with
file:line, per-label counts, and the config switch validated by key path."""

from __future__ import annotations

import json

import pytest
from tests.toy_multilabel import make_multilabel

from tunesmith.config import ConfigError, config_from_dict
from tunesmith.data import prepare_data
from tunesmith.data.errors import DataError
from tunesmith.families.multilabel.rows import parse_labels

_OFF = {"label_issues": {"enabled": False}, "pii": {"presidio": "off"}}


def _cfg(path, **data):
    return config_from_dict({"name": "m", "data": {"path": str(path), "multi_label": True, "checks": _OFF, **data}})


def test_jsonl_lists_and_bad_label_lists_are_quarantined_with_file_line(tmp_path):
    rows = make_multilabel(60, seed=1).to_dict("records")
    rows[1] = {"text": "a film", "label": []}  # empty list
    rows[2] = {"text": "a film", "label": ["praise", "spam"]}  # unknown label
    rows[3] = {"text": "a film", "label": ["praise", {"x": 1}]}  # not a string
    rows[4] = {"text": "a film"}  # no label cell
    rows[6] = {"text": "the actor", "label": ["acting", "praise", "acting"]}  # duplicates collapse
    path = tmp_path / "tags.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(path, labels=["praise", "complaint", "acting"])
    bundle = prepare_data(cfg, tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {"empty_labels": 1, "invalid_label": 1, "missing_label": 1,
                                                   "unknown_label": 1}
    sources = [json.loads(x)["source"] for x in (tmp_path / "run/quarantine.jsonl").read_text().splitlines()]
    assert sources == [f"{path}:{n}" for n in (2, 3, 4, 5)]
    frames = (bundle.train, bundle.eval, bundle.test)
    assert sum(len(f) for f in frames) == 56  # nothing else lost
    every = {r["text"]: r["labels"] for f in frames for r in f.to_dict("records")}
    assert every["the actor"] == ["acting", "praise"]
    assert bundle.labels == ["praise", "complaint", "acting"]
    assert parse_labels([7, 1.0, " a "], cfg.data) == ["7", "1", "a"]
    train_counts = bundle.report.label_distribution["train"]
    assert train_counts["praise"] == sum("praise" in labels for labels in bundle.train["labels"])
    with pytest.raises(DataError, match=rf"{path}:2: the label list in column 'label' is empty"):
        prepare_data(_cfg(path, bad_rows="fail"))
    ok = prepare_data(_cfg(path, allow_empty_labels=True, labels=["praise", "complaint", "acting"]))
    assert sum(len(f) for f in (ok.train, ok.eval, ok.test)) == 57  # the empty list is now a valid "no label" row


def test_csv_cells_split_on_the_separator_and_list_labels_without_the_switch_get_a_hint(tmp_path):
    df = make_multilabel(50, seed=2)
    df["label"] = [";".join(labels) for labels in df["label"]]
    df.to_csv(tmp_path / "tags.csv", index=False)
    bundle = prepare_data(_cfg(tmp_path / "tags.csv", label_separator=";"))
    assert bundle.labels == ["acting", "complaint", "praise"]
    assert all(isinstance(x, list) and x for f in (bundle.train, bundle.test) for x in f["labels"])

    rows = make_multilabel(30, seed=3).to_dict("records")
    (tmp_path / "lists.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    single = config_from_dict({"name": "s", "data": {"path": str(tmp_path / "lists.jsonl"), "bad_rows": "fail"}})
    with pytest.raises(DataError, match="lists.jsonl:1: .*is a list.*set data.multi_label: true"):
        prepare_data(single)


@pytest.mark.parametrize(("raw", "message"), [
    ({"task": "regression", "data": {"multi_label": True}}, "data.multi_label: multi-label rows are a classification"),
    ({"training": {"metric": "micro_f1"}}, "micro_f1 is a multi-label metric"),
    ({"data": {"multi_label": True}, "training": {"metric": "accuracy"}}, "not a multi-label metric"),
    ({"data": {"multi_label": True, "checks": {"imbalance": {"oversample": True}}}}, "pos_weight"),
])
def test_multi_label_config_is_checked_by_key_path(raw, message):
    data = {"path": "x.jsonl", **raw.pop("data", {})}
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"name": "m", "data": data, **raw})
    ok = config_from_dict({"name": "m", "data": {"path": "x.jsonl", "multi_label": True}})
    assert ok.training.metric == "micro_f1" and ok.data.split.stratify is False
