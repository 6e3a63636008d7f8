"""Every format reads the same rows, keeps each row's source line, and fails with the config key."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.data.data_helpers import make_cfg, write_frame
from tests.toy import make_reviews

from tunesmith.data import DataError, prepare_data


def _all_rows(bundle) -> pd.DataFrame:
    rows = pd.concat([bundle.train, bundle.eval, bundle.test])
    return rows.drop(columns="_source").sort_values(["text", "label", "genre"]).reset_index(drop=True)


def test_every_format_gives_the_same_rows_and_fingerprint(tmp_path):
    reviews = make_reviews(60)
    names = ["r.jsonl", "r.csv", "r.tsv", "r.csv.gz", "r.csv.bz2", "r.parquet"]
    bundles = {n: prepare_data(make_cfg(path=write_frame(reviews, tmp_path / n), slice_columns=["genre"])) for n in names}
    import datasets

    datasets.Dataset.from_pandas(reviews).save_to_disk(str(tmp_path / "hf"))
    bundles["hf"] = prepare_data(make_cfg(path=tmp_path / "hf", slice_columns=["genre"]))

    reference = bundles["r.jsonl"]
    assert len(_all_rows(reference)) == 60
    for name, bundle in bundles.items():
        assert bundle.fingerprint == reference.fingerprint, name
        pd.testing.assert_frame_equal(_all_rows(bundle), _all_rows(reference), check_dtype=False)
        assert bundle.train["text"].tolist() == reference.train["text"].tolist(), name
    formats = {n: b.report.sources[0]["format"] for n, b in bundles.items()}
    assert formats == {"r.jsonl": "jsonl", "r.csv": "csv", "r.tsv": "csv", "r.csv.gz": "csv", "r.csv.bz2": "csv",
                       "r.parquet": "parquet", "hf": "hf"}
    assert reference.train["_source"].str.fullmatch(rf"{tmp_path}/r\.jsonl:\d+").all()
    assert bundles["r.parquet"].train["_source"].str.fullmatch(r".*r\.parquet#row=\d+").all()


def test_csv_source_is_the_line_where_a_multiline_record_starts(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text(
        'text,label\n'                         # 1
        'one line,pos\n'                       # 2
        '"spans\nthree\nlines",neg\n'          # 3-5
        '"quoted, with comma",pos\n'           # 6
        '\n'                                   # 7: blank, not a row
        '"two\n\nparagraphs",neg\n'            # 8-10
        'after,pos\n'                          # 11
        'no label here,\n'                     # 12
    )
    bundle = prepare_data(make_cfg(train=path, eval=path, test=path, bad_rows="quarantine"), tmp_path / "run")
    lines = dict(zip(bundle.train["text"], bundle.train["_source"].str.rsplit(":", n=1).str[1].astype(int), strict=True))
    assert lines == {"one line": 2, "spans\nthree\nlines": 3, "quoted, with comma": 6, "two\n\nparagraphs": 8, "after": 11}

    with pytest.raises(DataError, match=r"multi\.csv:12: no label"):
        prepare_data(make_cfg(train=path, eval=path, test=path, bad_rows="fail"))


def test_missing_file_names_the_config_key(tmp_path):
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(train=tmp_path / "train.jsonl"))
    assert "data.train" in str(err.value) and "not found" in str(err.value)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    write_frame(make_reviews(30), tmp_path / "sub" / "r.csv")
    bundle = prepare_data(make_cfg(path="sub/r.csv", source=str(tmp_path / "config.yaml")))
    assert bundle.report.rows_used == 30


def test_unknown_extension_asks_for_data_format(tmp_path):
    path = write_frame(make_reviews(30), tmp_path / "r.csv").rename(tmp_path / "r.txt")
    with pytest.raises(DataError, match="data.format"):
        prepare_data(make_cfg(path=path))
    assert prepare_data(make_cfg(path=path, format="csv")).report.rows_used == 30


def test_hf_dataset_dict_points_at_its_split_folders(tmp_path):
    import datasets

    ds = datasets.Dataset.from_pandas(make_reviews(30))
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"data\.train: .*dd/train"):
        prepare_data(make_cfg(path=tmp_path / "dd"))
    bundle = prepare_data(make_cfg(train=tmp_path / "dd" / "train", test=tmp_path / "dd" / "test"))
    assert len(bundle.test) == 30


def test_hf_class_label_ints_become_names(tmp_path):
    import datasets

    reviews = make_reviews(30)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"]),
                                  "genre": datasets.Value("string")})
    datasets.Dataset.from_pandas(reviews, features=features).save_to_disk(str(tmp_path / "hf"))
    bundle = prepare_data(make_cfg(path=tmp_path / "hf"))
    assert bundle.labels == ["neg", "pos"]
