"""`tunesmith init`: the starter config guesses the columns and lists the labels exactly as the data stage reads them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from tests.toy import make_reviews

from tunesmith.config import load_config
from tunesmith.data import prepare_data
from tunesmith.starter import StarterError, write_starter_config


def test_integer_labels_with_a_blank_cell_are_the_labels_validate_accepts(tmp_path):
    rows = [f"review {i} of the film,{i % 2}" for i in range(199)] + ["a review nobody labeled,"]
    (tmp_path / "reviews.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "tunesmith.yaml"
    guess = write_starter_config(tmp_path / "reviews.csv", out)
    assert (guess.text_column, guess.label_column, guess.labels) == ("text", "label", ["0", "1"])
    assert yaml.safe_load(out.read_text())["data"]["labels"] == ["0", "1"]  # quoted: strings, not ints

    cfg = load_config(out)
    assert cfg.data.path == "reviews.csv" and cfg.name == "reviews"
    bundle = prepare_data(cfg, tmp_path / "run")
    assert bundle.labels == ["0", "1"]
    assert bundle.report.quarantined_by_reason == {"missing_label": 1}
    assert bundle.report.rows_used == 199
    record = json.loads((tmp_path / "run" / "quarantine.jsonl").read_text())
    assert record["source"] == f"{tmp_path / 'reviews.csv'}:201"


def test_jsonl_columns_are_guessed_by_name_and_by_content(tmp_path):
    df = make_reviews(60).rename(columns={"text": "body", "label": "sentiment"})
    df["id"] = range(60)
    path = tmp_path / "d.jsonl"
    df.to_json(path, orient="records", lines=True)
    (tmp_path / "cfg").mkdir()
    guess = write_starter_config(path, tmp_path / "cfg" / "starter.yaml", name="my-model")
    assert (guess.text_column, guess.label_column, guess.labels) == ("body", "sentiment", ["neg", "pos"])
    cfg = load_config(tmp_path / "cfg" / "starter.yaml")
    assert cfg.name == "my-model" and cfg.resolve_path(cfg.data.path) == path
    assert prepare_data(cfg).report.rows_used == 60


def test_labels_come_from_every_row_and_skip_rows_the_data_stage_sets_aside(tmp_path):
    lines = [json.dumps({"text": f"row {i}", "label": ["neg", "pos"][i % 2]}) for i in range(6000)]
    lines += [json.dumps({"text": "late", "label": "neutral"}), json.dumps({"text": "", "label": "empty-text"}), "{broken"]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    guess = write_starter_config(tmp_path / "d.jsonl", tmp_path / "t.yaml")
    assert guess.labels == ["neg", "neutral", "pos"]  # "neutral" is past the rows sampled for guessing


def test_labels_that_yaml_would_misread_are_quoted(tmp_path):
    df = pd.DataFrame({"text": [f"text {i}" for i in range(40)], "label": ["yes", "no", "1.5", "a: b"] * 10})
    df.to_csv(tmp_path / "d.csv", index=False)
    write_starter_config(tmp_path / "d.csv", tmp_path / "t.yaml")
    assert load_config(tmp_path / "t.yaml").data.labels == ["1.5", "a: b", "no", "yes"]


def test_no_label_like_column_is_a_starter_error(tmp_path):
    pd.DataFrame({"text": [f"unique text {i}" for i in range(50)], "n": range(50)}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(StarterError, match="no label column found"):
        write_starter_config(tmp_path / "d.csv", tmp_path / "t.yaml")
    assert not (tmp_path / "t.yaml").exists()


def test_unreadable_files_are_starter_errors(tmp_path):
    with pytest.raises(StarterError, match="file not found"):
        write_starter_config(tmp_path / "missing.csv", tmp_path / "t.yaml")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(StarterError, match=r"empty \(0 bytes\)"):
        write_starter_config(tmp_path / "empty.csv", tmp_path / "t.yaml")
    (tmp_path / "d.txt").write_text("text,label\n")
    with pytest.raises(StarterError, match="cannot tell the format"):
        write_starter_config(tmp_path / "d.txt", tmp_path / "t.yaml")


def test_names_from_file_stems_always_validate(tmp_path):
    for stem in ("2024", "_rev", "yes"):
        data = tmp_path / f"{stem}.csv"
        pd.DataFrame({"text": ["good film", "bad film", "fine", "awful"], "label": ["p", "n", "p", "n"]}).to_csv(
            data, index=False)
        out = tmp_path / f"{stem}.yaml"
        write_starter_config(data, out)
        assert load_config(out).name == stem.lstrip("_")
