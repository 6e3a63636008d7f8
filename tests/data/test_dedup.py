"""Near-duplicates (MinHash LSH, exact Jaccard), conflicting labels, split grouping, imbalance and oversampling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.data.data_helpers import make_cfg, write_frame
from tests.data.planted import edit, make_planted

from tunesmith.data import DataChecksFailed, prepare_data
from tunesmith.data.dedup import jaccard, lsh_bands, near_duplicate_pairs, shingles

NO_LABEL_CHECK = {"label_issues": {"enabled": False}, "pii": {"presidio": "off"}}


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.7, 128), (0.5, 64), (0.9, 256)])
def test_banding_makes_a_pair_at_the_threshold_a_candidate(threshold, num_perm):
    bands, rows = lsh_bands(threshold, num_perm)
    assert bands * rows <= num_perm
    assert 1 - (1 - threshold**rows) ** bands >= 0.985
    assert 1 - (1 - threshold ** (rows + 1)) ** (num_perm // (rows + 1)) < 0.985  # and it is the most selective one


def test_shingles_are_casefolded_word_pairs():
    assert shingles("The film, the FILM") == {b"the film", b"film the"}
    assert shingles("Wow") == {b"wow"}


def test_near_duplicate_pairs_are_confirmed_by_exact_jaccard():
    planted = make_planted(seed=3, n_train=300, n_eval=1, n_test=1)
    texts = planted.frames["train"]["text"].tolist()[:300]
    rng = np.random.default_rng(0)
    copies = [edit(texts[i], rng, sorted(set(" ".join(texts).split()))) for i in range(10)]
    found = near_duplicate_pairs(texts + copies, threshold=0.7)
    pairs = {tuple(p) for p in found.pairs.tolist()}
    assert {(i, 300 + i) for i in range(10)} <= pairs
    for (i, j), sim in zip(found.pairs.tolist(), found.similarity, strict=True):
        assert sim == pytest.approx(jaccard(shingles((texts + copies)[i]), shingles((texts + copies)[j])))
        assert sim >= 0.7
    assert found.candidates >= len(found.pairs)


def test_near_duplicates_never_straddle_the_splits_tunesmith_carves(tmp_path):
    base = make_planted(seed=4, n_train=400, n_eval=1, n_test=1).frames["train"]
    rng = np.random.default_rng(1)
    vocab = sorted(set(" ".join(base["text"]).split()))
    near = base.iloc[:60].assign(text=lambda d: [edit(t, rng, vocab) for t in d["text"]])
    path = write_frame(pd.concat([base, near], ignore_index=True), tmp_path / "all.jsonl")
    bundle = prepare_data(make_cfg(path=path, checks=NO_LABEL_CHECK), tmp_path / "run")
    leak = bundle.report.checks["leakage"]
    assert leak["status"] == "pass" and leak["by_kind"]["leak_near"]["rows"] == 0
    dups = bundle.report.checks["duplicates"]
    assert dups["status"] == "warn" and dups["by_kind"]["near_duplicate"]["rows"] >= 60
    assert dups["near_lsh"]["confirmed_pairs"] >= 60


def test_conflicting_duplicates_are_their_own_class_and_drop_removes_every_copy(tmp_path):
    rows = [{"text": f"distinct review {i} about a film with words {i * 7}", "label": ["pos", "neg"][i % 2]} for i in range(60)]
    rows += [{"text": "Same TEXT twice", "label": "pos"}, {"text": "same text   twice", "label": "neg"}]
    path = write_frame(pd.DataFrame(rows), tmp_path / "d.jsonl")
    checks = {**NO_LABEL_CHECK, "duplicates": {"conflicts": "drop"}}
    bundle = prepare_data(make_cfg(path=path, checks=checks), tmp_path / "run")
    conflicts = bundle.report.checks["conflicts"]
    assert conflicts["rows"] == 2 and conflicts["status"] == "dropped" and conflicts["dropped_rows"] == 2
    assert bundle.report.checks["duplicates"]["by_kind"]["duplicate"]["rows"] == 0  # not counted twice
    records = [json.loads(x) for x in (tmp_path / "run" / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in records) == [f"{path}:61", f"{path}:62"]
    assert {r["reason"] for r in records} == {"conflicting_labels"}
    assert sum(len(f) for f in (bundle.train, bundle.eval, bundle.test)) == 60


def test_duplicates_fail_policy_names_the_rows(tmp_path):
    rows = [{"text": f"review {i} of the film with several words {i * 3}", "label": ["pos", "neg"][i % 2]} for i in range(50)]
    rows.append(dict(rows[4]))
    path = write_frame(pd.DataFrame(rows), tmp_path / "d.jsonl")
    with pytest.raises(DataChecksFailed, match=rf"data\.checks\.duplicates: 1 rows repeat .*{path}:51 ~ {path}:5"):
        prepare_data(make_cfg(path=path, checks={**NO_LABEL_CHECK, "duplicates": {"policy": "fail"}}))


def test_imbalance_is_reported_with_the_fix_and_oversampling_applies_it(tmp_path):
    rows = [{"text": f"a review numbered {i} with its own words {i * 11}", "label": "pos" if i % 10 else "neg"} for i in range(300)]
    path = write_frame(pd.DataFrame(rows), tmp_path / "d.jsonl")
    bundle = prepare_data(make_cfg(path=path, checks=NO_LABEL_CHECK))
    found = bundle.report.checks["imbalance"]
    assert found["status"] == "warn" and found["ratio"] > 5 and "class_weights" in found["suggestion"]
    assert any(w.startswith("data.checks.imbalance:") for w in bundle.report.warnings)
    fixed = prepare_data(make_cfg(path=path, checks={**NO_LABEL_CHECK, "imbalance": {"oversample": True}}))
    counts = fixed.train["label"].value_counts()
    assert counts["neg"] == counts["pos"] == bundle.train["label"].value_counts()["pos"]
    assert fixed.report.checks["imbalance"]["status"] == "fixed"
    assert fixed.report.checks["imbalance"]["oversampled_rows"] == counts["pos"] - bundle.train["label"].value_counts()["neg"]
    assert fixed.test.equals(bundle.test)  # only train is oversampled
