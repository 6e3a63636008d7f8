import numpy as np
import pandas as pd
import pytest

from tunesmith.evaluation.slices import slice_metrics, text_length_buckets


def test_text_length_tertiles():
    texts = [" ".join(["w"] * n) for n in range(1, 10)]
    buckets, ranges = text_length_buckets(texts)
    assert buckets.tolist() == ["short"] * 3 + ["medium"] * 3 + ["long"] * 3
    assert ranges == {"short": "1-3 tokens", "medium": "4-6 tokens", "long": "7-9 tokens"}


def test_slice_metrics_per_value_with_skips_and_missing_values():
    n = 40
    test = pd.DataFrame({
        "text": [" ".join(["w"] * (1 + i % 12)) for i in range(n)],
        "genre": ["drama"] * 20 + ["comedy"] * 17 + [None] * 3,
    })
    y = np.array([i % 2 for i in range(n)])
    tuned = y.copy()
    tuned[20:30] = 1 - tuned[20:30]  # 10 of the 17 comedy rows wrong
    baseline = np.zeros(n, dtype=int)
    out = slice_metrics(test, y, {"tuned": tuned, "baseline": baseline}, ["genre", "text_length", "channel"], 2,
                        min_n=5)
    genre = {v["value"]: v for v in out["genre"]["values"]}
    assert genre["drama"]["n"] == 20 and genre["drama"]["tuned"]["accuracy"] == 1.0
    assert genre["comedy"]["tuned"]["accuracy"] == pytest.approx(7 / 17)
    assert genre["drama"]["baseline"]["accuracy"] == 0.5
    assert genre["drama"]["baseline"]["macro_f1"] == pytest.approx(1 / 3)  # one class always predicted
    assert out["genre"]["skipped"] == [{"value": "(missing)", "n": 3}]
    lengths = out["text_length"]
    assert [v["value"] for v in lengths["values"]] == ["short", "medium", "long"]
    assert sum(v["n"] for v in lengths["values"]) == n and set(lengths["ranges"]) == {"short", "medium", "long"}
    assert "not in the test split" in out["channel"]["error"]


def test_a_slice_column_named_text_length_is_used_as_is():
    test = pd.DataFrame({"text": ["a"] * 12, "text_length": ["x"] * 12})
    out = slice_metrics(test, np.zeros(12, dtype=int), {"tuned": np.zeros(12, dtype=int)}, ["text_length"], 2)
    assert [v["value"] for v in out["text_length"]["values"]] == ["x"]
