"""The same text in two user-given splits is counted and warned about; conflicting labels in train too."""

from __future__ import annotations

import json

import pandas as pd
from tests.data.data_helpers import make_cfg, write_frame

from tunesmith.data import prepare_data


def _rows(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review {i} of the film" for i in range(start, start + n)],
                         "label": ["pos" if i % 2 else "neg" for i in range(start, start + n)]})


def test_texts_shared_between_user_splits_are_counted_and_warned_about(tmp_path):
    train = _rows(0, 40)
    test = pd.concat([_rows(100, 20), train.iloc[[5, 9, 11, 20]].assign(text=lambda d: d["text"].str.upper())])
    eval_ = pd.concat([_rows(200, 10), test.iloc[[0]]])
    paths = {n: write_frame(f, tmp_path / f"{n}.jsonl") for n, f in (("train", train), ("eval", eval_), ("test", test))}
    run = tmp_path / "run"
    bundle = prepare_data(make_cfg(**paths, checks={"leakage": {"policy": "warn"}}), run)  # count, do not stop

    report = bundle.report
    assert report.overlap == {"train/eval": 0, "train/test": 4, "eval/test": 1}
    assert report.split_sizes == {"train": 40, "eval": 11, "test": 24}  # nothing dropped
    assert report.overlap_examples["train/test"] == [
        {"train": f"{paths['train']}:6", "test": f"{paths['test']}:21"},
        {"train": f"{paths['train']}:10", "test": f"{paths['test']}:22"},
        {"train": f"{paths['train']}:12", "test": f"{paths['test']}:23"},
    ]
    assert report.overlap_examples["eval/test"] == [{"eval": f"{paths['eval']}:11", "test": f"{paths['test']}:1"}]
    assert "train/eval" not in report.overlap_examples
    warning = next(w for w in report.warnings if "data.test" in w and "data.train" in w)
    assert warning.startswith(f"4 test rows of data.test ({paths['test']}) repeat a text of data.train ({paths['train']})")
    assert "inflate test metrics" in warning
    card = json.loads((run / "data_card.json").read_text())
    assert card["overlap"]["train/test"] == 4 and card["conflicting_duplicates"] == 0


def test_a_test_file_is_checked_against_an_eval_split_carved_from_train(tmp_path):
    train = _rows(0, 50)
    test = pd.concat([_rows(100, 10), train])  # every training text is in test
    bundle = prepare_data(make_cfg(train=write_frame(train, tmp_path / "train.csv"),
                                   test=write_frame(test, tmp_path / "test.csv"), checks={"leakage": {"policy": "warn"}}))
    overlap = bundle.report.overlap
    assert overlap["train/eval"] == 0
    assert overlap["train/test"] + overlap["eval/test"] == 50
    assert any(w.startswith(f"{overlap['eval/test']} test rows") and f"eval (split from {tmp_path / 'train.csv'})" in w
               for w in bundle.report.warnings)


def test_conflicting_duplicates_in_train_are_counted_and_warned_about(tmp_path):
    train = pd.concat([_rows(0, 30), pd.DataFrame({"text": ["review 3 of  the film", "Review 4 of the film", "review 5 of the film"],
                                                   "label": ["neg", "pos", "pos"]})], ignore_index=True)
    path = write_frame(train, tmp_path / "train.jsonl")
    bundle = prepare_data(make_cfg(train=path, test=write_frame(_rows(100, 10), tmp_path / "test.jsonl"),
                                   split={"eval": 0.2}))
    report = bundle.report
    assert report.conflicting_duplicates == 2  # 3 (pos/neg) and 4 (neg/pos); 5 agrees with its twin
    assert report.rows_used == 33 + 10
    warning = next(w for w in report.warnings if "different labels" in w)
    assert warning.startswith("2 texts occur more than once in ")
    assert f"'pos' at {path}:4 vs 'neg' at {path}:31" in warning
