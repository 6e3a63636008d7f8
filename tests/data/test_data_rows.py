"""Bad rows are never dropped silently: `fail` stops at file:line, `quarantine` keeps each with its reason."""

from __future__ import annotations

import json

import pytest
from tests.data.data_helpers import make_cfg, write_frame
from tests.toy import make_reviews

from tunesmith.data import DataError, prepare_data


def _jsonl(path, lines: list) -> str:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return str(path)


def _good(n: int, start: int = 0) -> list[dict]:
    return [{"text": f"review number {i}", "label": "pos" if i % 2 else "neg"} for i in range(start, start + n)]


def test_broken_jsonl_line_fails_with_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "file.jsonl", _good(2) + ['{"text": "oops", "label": '] + _good(20, 2))
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(path=path, bad_rows="fail"))
    message = str(err.value)
    assert "file.jsonl:3: invalid JSON" in message
    assert "data.bad_rows: quarantine" in message


def test_broken_jsonl_line_is_quarantined_with_its_reason(tmp_path):
    path = _jsonl(tmp_path / "file.jsonl", _good(2) + ['{"text": "oops", "label": '] + _good(20, 2))
    bundle = prepare_data(make_cfg(path=path, bad_rows="quarantine"), tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run" / "quarantine.jsonl").read_text().splitlines()]
    assert [(r["source"], r["reason"]) for r in records] == [(f"{path}:3", "invalid_json")]
    assert records[0]["row"] == {"_line": '{"text": "oops", "label": '}
    report = bundle.report
    assert (report.rows_read, report.rows_used, report.quarantined) == (23, 22, 1)
    assert report.quarantined_by_reason == {"invalid_json": 1}
    assert report.quarantine_path == str(tmp_path / "run" / "quarantine.jsonl")


def test_every_bad_row_reason_is_counted(tmp_path):
    bad = [
        [1, 2],                                   # 21 not_an_object
        {"label": "pos"},                          # 22 missing_text
        {"text": None, "label": "pos"},            # 23 missing_text
        {"text": 42, "label": "pos"},              # 24 non_string_text
        {"text": ["a", "b"], "label": "neg"},      # 25 non_string_text
        {"text": "  \t ", "label": "neg"},         # 26 empty_text
        {"text": "no label"},                      # 27 missing_label
        {"text": "blank label", "label": " "},     # 28 missing_label
        {"text": "list label", "label": ["pos"]},  # 29 invalid_label
        {"text": "what", "label": "meh"},          # 30 unknown_label
    ]
    path = _jsonl(tmp_path / "d.jsonl", _good(20) + bad)
    bundle = prepare_data(make_cfg(path=path, labels=["neg", "pos"]), tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {
        "empty_text": 1, "invalid_label": 1, "missing_label": 2, "missing_text": 2, "non_string_text": 2,
        "not_an_object": 1, "unknown_label": 1,
    }
    records = [json.loads(x) for x in (tmp_path / "run" / "quarantine.jsonl").read_text().splitlines()]
    assert [int(r["source"].rsplit(":", 1)[1]) for r in records] == list(range(21, 31))
    assert records[3]["row"] == {"text": 42, "label": "pos"}
    assert bundle.report.rows_used == 20


def test_integer_labels_are_strings(tmp_path):
    rows = [{"text": f"row {i}", "label": i % 3} for i in range(30)]
    bundle = prepare_data(make_cfg(path=_jsonl(tmp_path / "d.jsonl", rows)))
    assert bundle.labels == ["0", "1", "2"]
    assert bundle.train["label"].map(type).eq(str).all()


def test_csv_missing_label_column_names_file_key_and_suggestion(tmp_path):
    path = write_frame(make_reviews(20).rename(columns={"label": "lable"}), tmp_path / "reviews.csv")
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(path=path))
    message = str(err.value)
    assert "reviews.csv" in message and "data.label_column" in message
    assert "did you mean 'lable'" in message
    assert "'text', 'lable', 'genre'" in message


def test_csv_empty_fields_are_missing_values(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(20)) + ",a\nlonely,\n")
    bundle = prepare_data(make_cfg(path=path), tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {"missing_label": 1, "missing_text": 1}


def test_unknown_label_fails_with_a_hint_and_a_near_match(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", _good(20) + [{"text": "x", "label": "Pos"}])
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(path=path, labels=["neg", "pos"], bad_rows="fail"))
    message = str(err.value)
    assert "d.jsonl:21: label 'Pos' is not in data.labels (did you mean 'pos'?)" in message
    assert "data.drop_labels" in message


def test_drop_labels_are_counted_not_quarantined(tmp_path):
    rows = _good(30) + [{"text": f"spam {i}", "label": "spam"} for i in range(4)] + [{"text": "", "label": "spam"}]
    bundle = prepare_data(make_cfg(path=_jsonl(tmp_path / "d.jsonl", rows), drop_labels=["spam"], bad_rows="fail"))
    assert bundle.report.excluded_by_config == {"spam": 5}
    assert bundle.report.quarantined == 0
    assert bundle.labels == ["neg", "pos"]
    assert bundle.report.rows_used == 30


def test_labels_differing_only_by_case_are_an_error(tmp_path):
    rows = _good(20) + [{"text": "shouty", "label": "Pos"}, {"text": "spacey", "label": "neg "}]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(path=path))
    message = str(err.value)
    assert "'Pos'" in message and "'pos'" in message and "'neg '" in message
    assert f"(first at {path}:21)" in message
    assert "data.labels" in message

    bundle = prepare_data(make_cfg(path=path, labels=["neg", "pos"]))  # listing the labels settles it
    assert bundle.report.quarantined_by_reason == {"unknown_label": 2}


def test_no_usable_rows_is_an_error_after_writing_the_quarantine(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": "", "label": "a"}, {"text": " ", "label": "b"}])
    with pytest.raises(DataError, match="none of its 2 rows is usable"):
        prepare_data(make_cfg(path=path), tmp_path / "run")
    assert len((tmp_path / "run" / "quarantine.jsonl").read_text().splitlines()) == 2


def test_one_label_in_train_is_an_error_naming_the_label_and_the_keys(tmp_path):
    rows = _good(30) + [{"text": f"spam {i}", "label": "spam"} for i in range(3)]
    path = _jsonl(tmp_path / "d.jsonl", [r for r in rows if r["label"] != "pos"])
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(path=path, drop_labels=["spam"]))
    message = str(err.value)
    assert message.startswith("data.label_column: train has only one label, 'neg' in column 'label' (11 rows)")
    assert "data.labels" in message and "data.drop_labels" in message and "3 rows were excluded" in message


def test_one_label_left_by_data_labels_is_an_error(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", _good(30))
    with pytest.raises(DataError, match=r"only one label, 'pos'"):
        prepare_data(make_cfg(path=path, labels=["pos", "other"]))


def test_numeric_labels_in_the_config_are_labels_as_written(tmp_path):
    cfg = make_cfg(path="d.jsonl", labels=[0, 1, "2"], drop_labels=[3, 1.5])
    assert cfg.data.labels == ["0", "1", "2"] and cfg.data.drop_labels == ["3", "1.5"]
    assert make_cfg(path="d.jsonl", labels=[1.0]).data.labels == ["1.0"]  # not "1": labels compare as written

    rows = [{"text": f"row {i}", "label": i % 4} for i in range(40)]
    bundle = prepare_data(make_cfg(path=_jsonl(tmp_path / "d.jsonl", rows), labels=[1, 0, 2], drop_labels=[3]))
    assert bundle.labels == ["1", "0", "2"]
    assert bundle.report.excluded_by_config == {"3": 10} and bundle.report.quarantined == 0


def test_a_float_label_in_the_config_hints_at_the_integer_in_the_data(tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", [{"text": f"row {i}", "label": i % 2} for i in range(20)])
    with pytest.raises(DataError, match=r"label '0' is not in data.labels \(did you mean '0.0'\?\)"):
        prepare_data(make_cfg(path=path, labels=[0.0, 1.0], bad_rows="fail"))
