"""Entity metrics: the count-based scores equal seqeval's strict IOB2 report; the sentence bootstrap is paired."""

from __future__ import annotations

import random

import numpy as np
import pytest
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from tunesmith.families.token_classification.metrics import deltas, entity_counts, entity_scores

TAGS = ["O", "B-A", "I-A", "B-B", "I-B", "B-C", "I-C"]


def _noisy(seed: int, n: int = 150):
    rng = random.Random(seed)
    gold = [[rng.choice(TAGS) for _ in range(rng.randint(1, 9))] for _ in range(n)]
    pred = [[t if rng.random() < 0.7 else rng.choice(TAGS) for t in s] for s in gold]
    return gold, pred


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_equal_seqeval_strict_iob2(seed):
    gold, pred = _noisy(seed)
    ref = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    ours = entity_scores(entity_counts(gold, pred, ["A", "B", "C"]), ["A", "B", "C"])
    for mine, theirs in (("f1", "micro avg"), ("macro_f1", "macro avg")):
        key = "f1-score"
        assert ours[mine] == pytest.approx(ref[theirs][key])
    assert ours["precision"] == pytest.approx(ref["micro avg"]["precision"])
    for t in "ABC":
        assert ours["per_type"][t]["f1"] == pytest.approx(ref[t]["f1-score"])
        assert ours["per_type"][t]["support"] == ref[t]["support"]


def test_boundaries_must_match_exactly():
    s = entity_scores(entity_counts([["B-A", "I-A", "O"]], [["B-A", "O", "O"]], ["A"]), ["A"])
    assert s["f1"] == 0 and s["entities"] == 1


def test_sentence_bootstrap_is_paired_and_centered():
    gold, pred = _noisy(3)
    worse = [["O"] * len(s) for s in gold]
    a, b = entity_counts(gold, pred, ["A", "B", "C"]), entity_counts(gold, worse, ["A", "B", "C"])
    same = deltas(a, a, samples=200, confidence=0.95, seed=0)["f1"]
    assert same["delta"] == 0 and same["ci_low"] == 0 == same["ci_high"]
    better = deltas(a, b, samples=200, confidence=0.95, seed=0)["f1"]
    assert better["ci_low"] > 0 and better["delta"] == pytest.approx(entity_scores(a, list("ABC"))["f1"])
    assert np.isfinite(better["p_value"]) and better["p_value"] < 0.05
