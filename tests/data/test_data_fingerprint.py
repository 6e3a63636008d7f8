"""The fingerprint follows content: labels and texts count; row order, format and whitespace do not."""

from __future__ import annotations

import unicodedata

from tests.data.data_helpers import make_cfg, write_frame
from tests.toy import make_reviews

from tunesmith.data import prepare_data


def _fingerprint(df, path, **data) -> str:
    return prepare_data(make_cfg(path=write_frame(df, path), **data)).fingerprint


def test_fingerprint_ignores_row_order_but_not_a_label(tmp_path):
    df = make_reviews(50)
    base = _fingerprint(df, tmp_path / "a.jsonl")
    assert len(base) == 64 and int(base, 16) >= 0
    assert _fingerprint(df.iloc[::-1], tmp_path / "b.jsonl") == base
    changed = df.copy()
    changed.loc[7, "label"] = "pos" if changed.loc[7, "label"] == "neg" else "neg"
    assert _fingerprint(changed, tmp_path / "c.jsonl") != base


def test_fingerprint_normalizes_unicode_and_whitespace_but_sees_text_edits(tmp_path):
    df = make_reviews(40)
    df.loc[3, "text"] = "un café très bon"
    base = _fingerprint(df, tmp_path / "a.csv")
    variant = df.copy()
    variant.loc[3, "text"] = unicodedata.normalize("NFD", "  un café\r\n très   bon ")
    assert _fingerprint(variant, tmp_path / "b.csv") == base
    variant.loc[3, "text"] = "un café très bon!"
    assert _fingerprint(variant, tmp_path / "c.csv") != base


def test_fingerprint_covers_the_label_set_and_the_split(tmp_path):
    df = make_reviews(40)
    base = _fingerprint(df, tmp_path / "a.csv")
    assert _fingerprint(df, tmp_path / "b.csv", labels=["pos", "neg"]) != base  # class ids change
    assert _fingerprint(df, tmp_path / "c.csv", split={"eval": 0.2, "test": 0.1}) != base
