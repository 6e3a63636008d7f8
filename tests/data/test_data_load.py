"""Every format reads the same rows, keeps each row's source line, and fails with the config key."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tests.data.data_helpers import make_cfg, write_frame
from tests.toy import make_reviews

from tunesmith.data import DataError, prepare_data

LEAK_WARN = {"leakage": {"policy": "warn"}}  # these tests reuse one file as several splits on purpose


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
    bundle = prepare_data(make_cfg(train=path, eval=path, test=path, bad_rows="quarantine", checks=LEAK_WARN), tmp_path / "run")
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
    bundle = prepare_data(make_cfg(train=tmp_path / "dd" / "train", test=tmp_path / "dd" / "test", checks=LEAK_WARN))
    assert len(bundle.test) == 30


def test_hf_class_label_ints_become_names(tmp_path):
    import datasets

    reviews = make_reviews(30)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"]),
                                  "genre": datasets.Value("string")})
    datasets.Dataset.from_pandas(reviews, features=features).save_to_disk(str(tmp_path / "hf"))
    bundle = prepare_data(make_cfg(path=tmp_path / "hf"))
    assert bundle.labels == ["neg", "pos"]


def _csv_bytes(bad_line: bytes, filler: int = 0) -> bytes:
    good = b"".join(b"row %d,%s\n" % (i, b"ab"[i % 2 : i % 2 + 1]) for i in range(20))
    return b"text,label\n" + bad_line + b"x,a\n" * filler + good


def test_csv_bytes_that_are_not_utf8_are_reported_on_their_own_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(_csv_bytes(b"caf\xe9 au lait,a\n", filler=3000))  # far ahead of the decoder's buffer
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(path=path, bad_rows="fail"))
    message = str(err.value)
    assert message.startswith(f"{path}:2: not valid UTF-8: byte 0xe9 on line 2, column 'text'")
    assert "UTF-8" in err.value.hint and "quarantine" in err.value.hint

    bundle = prepare_data(make_cfg(path=path), tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {"invalid_utf8": 1}
    record = json.loads((tmp_path / "run" / "quarantine.jsonl").read_text())
    assert (record["source"], record["row"]) == (f"{path}:2", {"text": "caf\ufffd au lait", "label": "a"})


def test_csv_bad_byte_inside_a_multiline_field_names_its_physical_line(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_bytes(_csv_bytes(b'ok,a\n"first\nsecond \xff,",b\n'))
    bundle = prepare_data(make_cfg(path=path), tmp_path / "run")
    record = json.loads((tmp_path / "run" / "quarantine.jsonl").read_text())
    assert record["source"] == f"{path}:3" and record["detail"] == "not valid UTF-8: byte 0xff on line 4, column 'text'"
    assert bundle.report.rows_used == 21


def test_jsonl_bytes_that_are_not_utf8_are_a_bad_row(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [json.dumps({"text": f"row {i}", "label": "ab"[i % 2]}).encode() for i in range(20)]
    path.write_bytes(b"\n".join(lines[:3] + [b'{"text": "caf\xe9", "label": "a"}'] + lines[3:]) + b"\n")
    with pytest.raises(DataError, match=r"d\.jsonl:4: not valid UTF-8: byte 0xe9"):
        prepare_data(make_cfg(path=path, bad_rows="fail"))


def test_a_corrupt_parquet_file_is_a_data_error(tmp_path):
    good = write_frame(make_reviews(30), tmp_path / "good.parquet")
    (tmp_path / "cut.parquet").write_bytes(good.read_bytes()[:-40])
    (tmp_path / "not.parquet").write_text("text,label\nhello,pos\n")
    for name in ("cut.parquet", "not.parquet"):
        with pytest.raises(DataError) as err:
            prepare_data(make_cfg(train=tmp_path / name))
        assert str(err.value).startswith(f"{tmp_path / name}: cannot read it as parquet (data.train): ArrowInvalid")
        assert "to_parquet" in err.value.hint


def test_an_unreadable_hf_dir_is_a_data_error(tmp_path):
    import datasets

    (tmp_path / "plain").mkdir()
    datasets.Dataset.from_pandas(make_reviews(30)).save_to_disk(str(tmp_path / "cut"))
    arrow = next((tmp_path / "cut").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:100])
    for name in ("plain", "cut"):
        with pytest.raises(DataError) as err:
            prepare_data(make_cfg(path=tmp_path / name))
        assert str(err.value).startswith(f"{tmp_path / name}: cannot read it as a saved HF dataset (data.path)")
        assert "save_to_disk" in err.value.hint


def test_a_corrupt_compressed_file_is_a_data_error(tmp_path):
    (tmp_path / "d.jsonl.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=r"d\.jsonl\.gz: cannot read it as JSON Lines \(data\.path\): BadGzipFile"):
        prepare_data(make_cfg(path=tmp_path / "d.jsonl.gz"))


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("empty.csv", b"", "the file is empty (0 bytes)"),
    ("empty.jsonl", b"", "the file is empty (0 bytes)"),
    ("header.csv", b"text,label\n", "the file has columns but no rows"),
    ("blank.jsonl", b"\n\n  \n", "the file has no rows (only blank lines)"),
])
def test_a_file_without_rows_is_a_data_error_with_a_hint(tmp_path, name, content, problem):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError) as err:
        prepare_data(make_cfg(train=tmp_path / name))
    assert str(err.value).startswith(f"{tmp_path / name}: {problem}, so data.train has no rows")
    assert err.value.hint


def test_an_empty_parquet_file_is_a_data_error(tmp_path):
    path = write_frame(make_reviews(5).iloc[:0], tmp_path / "none.parquet")
    with pytest.raises(DataError, match="the file has columns but no rows, so data.path has no rows"):
        prepare_data(make_cfg(path=path))


def test_blank_lines_before_a_csv_header_are_skipped_and_lines_stay_physical(tmp_path):
    path = tmp_path / "lead.csv"
    path.write_text(
        '\n'                                   # 1: blank
        '  \n'                                 # 2: whitespace only
        'text,label\n'                         # 3: the header
        'one,pos\n'                            # 4
        '"two\nlines",neg\n'                   # 5-6
        '\n'                                   # 7: blank, not a row
        'three,pos\n'                          # 8
        'four,neg,extra\n'                     # 9: malformed
    )
    bundle = prepare_data(make_cfg(train=path, eval=path, test=path, checks=LEAK_WARN), tmp_path / "run")
    lines = dict(zip(bundle.train["text"], bundle.train["_source"], strict=True))
    assert lines == {"one": f"{path}:4", "two\nlines": f"{path}:5", "three": f"{path}:8"}
    assert bundle.report.quarantined_by_reason == {"malformed_row": 3}  # line 9, once per split file
    record = json.loads((tmp_path / "run" / "quarantine.jsonl").read_text().splitlines()[0])
    assert record["source"] == f"{path}:9"


def test_a_csv_header_after_blank_lines_is_checked_on_its_own_line(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("\n\ntext,text\na,b\n")
    with pytest.raises(DataError, match=rf"^{path}:3: duplicate column names \['text'\]"):
        prepare_data(make_cfg(path=path))
