"""seen_texts.npy: hashes of normalized texts, written atomically, read back without pickle."""

import numpy as np
import pytest

from tunesmith.provenance import SEEN_TEXTS_FILE, read_seen_texts, text_hashes, write_seen_texts


def test_hashes_ignore_case_spacing_and_unicode_composition():
    same = ["Caf\u00e9 was  great", "cafe\u0301 WAS great\n", "\tCAF\u00c9 was great "]
    hashes = text_hashes(same)
    assert hashes.dtype == np.uint64 and len(set(hashes.tolist())) == 1
    assert text_hashes(["cafe was great"])[0] != hashes[0]  # a different text is a different hash


def test_round_trip_is_a_plain_uint64_array(tmp_path):
    assert read_seen_texts(tmp_path) is None  # no record: the caller decides what that means
    path = write_seen_texts(tmp_path, ["b", "a", "A", "c"])
    assert path == tmp_path / SEEN_TEXTS_FILE
    arr = np.load(path, allow_pickle=False)
    assert arr.dtype == np.uint64 and arr.ndim == 1 and len(arr) == 3 and list(arr) == sorted(arr)
    assert read_seen_texts(tmp_path) == set(text_hashes(["a", "b", "c"]).tolist())
    assert [p.name for p in tmp_path.iterdir()] == [SEEN_TEXTS_FILE]  # the temp file was renamed into place
    write_seen_texts(tmp_path, [])
    assert read_seen_texts(tmp_path) == set()


def test_a_pickled_or_wrong_array_is_refused(tmp_path):
    np.save(tmp_path / SEEN_TEXTS_FILE, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a readable seen-texts array"):
        read_seen_texts(tmp_path)
    np.save(tmp_path / SEEN_TEXTS_FILE, np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="expected a 1-D uint64 array"):
        read_seen_texts(tmp_path)
