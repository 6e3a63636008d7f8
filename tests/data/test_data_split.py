"""Seeded, stratified splits that do not depend on row order, user-given splits, and max_rows."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.data.data_helpers import make_cfg, write_frame
from tests.toy import make_reviews

from tunesmith.data import DataError, prepare_data


def _unbalanced(n_a: int = 300, n_b: int = 120, n_c: int = 60) -> pd.DataFrame:
    labels = ["a"] * n_a + ["b"] * n_b + ["c"] * n_c
    return pd.DataFrame({"text": [f"text {i} about {lab}" for i, lab in enumerate(labels)], "label": labels})


def _texts(bundle) -> dict[str, set[str]]:
    return {name: set(bundle.split(name)["text"]) for name in ("train", "eval", "test")}


def test_split_is_stratified_with_the_configured_shares(tmp_path):
    path = write_frame(_unbalanced(), tmp_path / "d.csv")
    bundle = prepare_data(make_cfg(path=path, split={"eval": 0.1, "test": 0.2}))
    assert bundle.report.split_sizes == {"train": 336, "eval": 48, "test": 96}
    expected = {"a": 300 / 480, "b": 120 / 480, "c": 60 / 480}
    for name in ("train", "eval", "test"):
        shares = bundle.split(name)["label"].value_counts(normalize=True)
        for label, share in expected.items():
            assert shares[label] == pytest.approx(share, abs=0.02), (name, label)
    train, eval_, test = _texts(bundle).values()
    assert not (train & eval_) and not (train & test) and not (eval_ & test)
    assert bundle.labels == ["a", "b", "c"]


def test_split_depends_on_seed_not_on_row_order(tmp_path):
    df = _unbalanced()
    path = write_frame(df, tmp_path / "d.jsonl")
    shuffled = write_frame(df.sample(frac=1, random_state=1), tmp_path / "shuffled.jsonl")
    first = prepare_data(make_cfg(path=path, seed=7))
    assert _texts(prepare_data(make_cfg(path=path, seed=7))) == _texts(first)
    assert _texts(prepare_data(make_cfg(path=shuffled, seed=7))) == _texts(first)
    assert _texts(prepare_data(make_cfg(path=path, seed=8)))["test"] != _texts(first)["test"]


def test_every_class_with_three_rows_reaches_every_split(tmp_path):
    df = _unbalanced(n_a=200, n_b=3, n_c=2)
    bundle = prepare_data(make_cfg(path=write_frame(df, tmp_path / "d.csv")))
    dist = bundle.report.label_distribution
    assert [dist[s]["b"] for s in ("train", "eval", "test")] == [1, 1, 1]
    assert [dist[s]["c"] for s in ("train", "eval", "test")] == [2, 0, 0]
    assert any("'c (2)'" in w for w in bundle.report.warnings)


def test_unstratified_split_keeps_the_shares(tmp_path):
    bundle = prepare_data(make_cfg(path=write_frame(_unbalanced(), tmp_path / "d.csv"), split={"stratify": False}))
    assert bundle.report.split_sizes == {"train": 384, "eval": 48, "test": 48}


def test_user_given_splits_are_used_as_they_are(tmp_path):
    train = write_frame(make_reviews(80, seed=1), tmp_path / "train.jsonl")
    eval_ = write_frame(make_reviews(20, seed=2), tmp_path / "eval.csv")
    test = write_frame(make_reviews(30, seed=3), tmp_path / "test.parquet")
    bundle = prepare_data(make_cfg(train=train, eval=eval_, test=test))
    assert bundle.report.split_sizes == {"train": 80, "eval": 20, "test": 30}
    assert [s["key"] for s in bundle.report.sources] == ["data.train", "data.eval", "data.test"]
    assert bundle.eval["_source"].str.contains("eval.csv:").all()


def test_a_missing_eval_split_is_carved_from_train(tmp_path):
    train = write_frame(make_reviews(100, seed=1), tmp_path / "train.jsonl")
    test = write_frame(make_reviews(30, seed=3), tmp_path / "test.jsonl")
    bundle = prepare_data(make_cfg(train=train, test=test, split={"eval": 0.2}))
    assert bundle.report.split_sizes == {"train": 80, "eval": 20, "test": 30}
    assert bundle.eval["_source"].str.contains("train.jsonl:").all()
    assert bundle.eval["label"].value_counts().to_dict() == {"pos": 10, "neg": 10}


def test_labels_seen_only_in_eval_are_an_error(tmp_path):
    train = write_frame(make_reviews(40), tmp_path / "train.jsonl")
    eval_ = write_frame(make_reviews(12, labels=("pos", "neg", "neutral")), tmp_path / "eval.jsonl")
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(train=train, eval=eval_))
    assert "data.eval" in str(err.value) and "'neutral'" in str(err.value) and "never in train" in str(err.value)


def test_max_rows_subsamples_before_splitting(tmp_path):
    path = write_frame(_unbalanced(), tmp_path / "d.csv")
    bundle = prepare_data(make_cfg(path=path, max_rows=100))
    report = bundle.report
    assert report.rows_used == 100 and report.dropped_by_max_rows == 380
    total = {label: sum(report.label_distribution[s][label] for s in ("train", "eval", "test")) for label in "abc"}
    assert total == pytest.approx({"a": 62.5, "b": 25, "c": 12.5}, abs=1)  # 480 rows in 5:2:1
    assert all(report.label_distribution[s]["c"] >= 1 for s in ("train", "eval", "test"))
    again = prepare_data(make_cfg(path=path, max_rows=100))
    assert _texts(again) == _texts(bundle)


def test_max_rows_with_user_splits_applies_to_train_only(tmp_path):
    train = write_frame(make_reviews(200, seed=1), tmp_path / "train.jsonl")
    eval_ = write_frame(make_reviews(20, seed=2), tmp_path / "eval.jsonl")
    test = write_frame(make_reviews(30, seed=3), tmp_path / "test.jsonl")
    bundle = prepare_data(make_cfg(train=train, eval=eval_, test=test, max_rows=50))
    assert bundle.report.split_sizes == {"train": 50, "eval": 20, "test": 30}
    assert bundle.report.label_distribution["train"] == {"neg": 25, "pos": 25}


def test_configured_label_order_is_the_class_order(tmp_path):
    bundle = prepare_data(make_cfg(path=write_frame(make_reviews(40), tmp_path / "d.csv"), labels=["pos", "neg"]))
    assert bundle.labels == ["pos", "neg"] and bundle.label2id == {"pos": 0, "neg": 1}
    assert list(bundle.report.label_distribution["train"]) == ["pos", "neg"]


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_identical_texts_land_in_one_split_whatever_their_label_or_slice(tmp_path):
    base = _unbalanced(n_a=60, n_b=60, n_c=0)
    copies = base.assign(text=base["text"].str.upper() + "  ", label=base["label"].map({"a": "b", "b": "a"}))
    df = pd.concat([base.assign(lang="en"), copies.assign(lang="fr")], ignore_index=True)
    bundle = prepare_data(make_cfg(path=write_frame(df, tmp_path / "d.csv"), slice_columns=["lang"]))
    keys = {name: set(bundle.split(name)["text"].map(_key)) for name in ("train", "eval", "test")}
    assert not (keys["train"] & keys["eval"]) and not (keys["train"] & keys["test"]) and not (keys["eval"] & keys["test"])
    assert bundle.report.split_sizes == {"train": 192, "eval": 24, "test": 24}  # 120 texts, each twice
    assert bundle.report.overlap == {"train/eval": 0, "train/test": 0, "eval/test": 0}
    shuffled = prepare_data(make_cfg(path=write_frame(df.sample(frac=1, random_state=3), tmp_path / "s.jsonl"),
                                     slice_columns=["lang"]))
    assert _texts(shuffled) == _texts(bundle)


def test_a_text_repeated_in_one_class_is_not_counted_twice_toward_a_share(tmp_path):
    df = _unbalanced(n_a=100, n_b=100, n_c=0)
    df = pd.concat([df, df[df["label"] == "a"]], ignore_index=True)  # every "a" text twice
    bundle = prepare_data(make_cfg(path=write_frame(df, tmp_path / "d.csv")))
    sizes = {name: bundle.split(name)["text"].nunique() for name in ("train", "eval", "test")}
    assert sizes == {"train": 160, "eval": 20, "test": 20}
    assert sum(sizes.values()) == 200  # each text in one split only
    assert bundle.report.conflicting_duplicates == 0


def _one_text_repeated(n_unique: int, n_copies: int) -> pd.DataFrame:
    texts = [f"review {i}" for i in range(n_unique)] + ["great product"] * n_copies
    labels = ["ab"[i % 2] for i in range(n_unique)] + ["a"] * n_copies
    return pd.DataFrame({"text": texts, "label": labels})


def test_a_row_share_far_from_the_configured_one_is_warned_about(tmp_path):
    path = write_frame(_one_text_repeated(80, 20), tmp_path / "d.csv")  # 100 rows, 81 distinct texts
    bundle = prepare_data(make_cfg(path=path, seed=0))  # the repeated text lands in test with this seed
    assert bundle.report.split_sizes == {"train": 65, "eval": 8, "test": 27}
    [warning] = [w for w in bundle.report.warnings if w.startswith("data.split.")]
    assert warning.startswith("data.split.test: test got 27 of 100 rows (8 distinct texts), a row share of 0.27 "
                              "where 0.1 is configured; the likely cause is many repeated texts")
    assert "100 rows are only 81 distinct texts" in warning
    assert "deduplicate" in warning and "data.train/data.eval/data.test" in warning

    quiet = prepare_data(make_cfg(path=path, seed=1))  # the repeated text stays in train: shares hold
    assert quiet.report.split_sizes == {"train": 84, "eval": 8, "test": 8}
    assert not [w for w in quiet.report.warnings if w.startswith("data.split.")]


def test_a_split_starved_of_rows_by_repeats_is_warned_about(tmp_path):
    path = write_frame(_one_text_repeated(6, 54), tmp_path / "d.csv")  # 60 rows, 7 distinct texts
    bundle = prepare_data(make_cfg(path=path, seed=1))
    assert bundle.report.split_sizes == {"train": 56, "eval": 2, "test": 2}
    warned = [w.split(":")[0] for w in bundle.report.warnings if w.startswith("data.split.")]
    assert warned == ["data.split.eval", "data.split.test"]


def test_train_smaller_than_the_held_out_splits_because_of_repeats_is_an_error(tmp_path):
    path = write_frame(_one_text_repeated(6, 54), tmp_path / "d.csv")
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(path=path, seed=0))  # the 54 copies land in a held-out split
    assert err.value.where == "data.split"
    message = str(err.value)
    assert "train gets only 3 of 60 rows, fewer than eval + test together (57 rows; configured eval 0.1, test 0.1)" in message
    assert "repeated texts" in message and "60 rows are only 7 distinct texts" in message
    assert "deduplicate" in err.value.hint and "data.train/data.eval/data.test" in err.value.hint

    many = write_frame(_one_text_repeated(35, 25), tmp_path / "many.csv")  # 25 of 60 rows are one text
    with pytest.raises(DataError, match=r"^data\.split: train gets only 28 of 60 rows"):
        prepare_data(make_cfg(path=many, seed=0))


def test_no_share_warning_when_no_text_repeats(tmp_path):
    df = _unbalanced(n_a=8, n_b=3, n_c=3)  # tiny classes: the floors move the shares, not repeats
    bundle = prepare_data(make_cfg(path=write_frame(df, tmp_path / "d.csv")))
    assert not [w for w in bundle.report.warnings if w.startswith("data.split.")]
