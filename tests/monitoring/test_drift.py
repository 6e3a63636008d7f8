"""Drift statistics on data with a known answer: the same distribution passes, a shifted one flags."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.config import DriftConfig
from tunesmith.monitoring import drift
from tunesmith.monitoring.reference import text_length, tokens


def test_psi_is_zero_for_the_same_shares_and_large_for_a_flipped_mix():
    assert drift.psi([50, 50], [500, 500]) == pytest.approx(0.0, abs=1e-9)
    assert drift.psi([50, 50], [10, 90]) > 0.25
    assert np.isfinite(drift.psi([50, 50], [0, 100]))  # an empty bucket is smoothed, not infinite


def test_mmd_permutation_test_separates_shifted_embeddings_only():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(60, 8))
    same = rng.normal(size=(60, 8))
    shifted = rng.normal(loc=0.8, size=(60, 8))
    _, p_same = drift.mmd_test(ref, same, permutations=100, seed=1)
    stat, p_shift = drift.mmd_test(ref, shifted, permutations=100, seed=1)
    assert p_same > 0.05 and p_shift < 0.02 and stat > 0


def _reference(texts, labels=("neg", "pos"), predicted=(50, 50), confidences=None, ece=0.02):
    from collections import Counter

    counts = Counter(t for text in texts for t in tokens(text))
    rng = np.random.default_rng(0)
    return {"labels": list(labels), "lengths": [text_length(t) for t in texts], "token_counts": dict(counts),
            "token_total": sum(counts.values()), "predicted_counts": dict(zip(labels, predicted, strict=True)),
            "confidences": confidences if confidences is not None else rng.uniform(0.7, 1.0, 200).tolist(),
            "ece": ece, "embeddings": rng.normal(size=(40, 4)).tolist()}


def _texts(words, n, seed, length=(4, 10)):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=rng.integers(*length))) for _ in range(n)]


def test_input_drift_flags_new_vocabulary_and_longer_texts_not_a_fresh_sample():
    old = ["film", "plot", "great", "dull", "actor", "scene"]
    ref = _reference(_texts(old, 300, 0))
    settings = DriftConfig()
    same = drift.input_drift(_texts(old, 100, 1), ref, settings)
    assert not any(t["flagged"] for t in same.values()), same
    new = drift.input_drift(_texts(["phone", "broken", "cable", "late"], 100, 2, (12, 20)), ref, settings)
    assert new["token_distribution"]["flagged"] and new["token_distribution"]["unseen_token_share"] == 1.0
    assert new["text_length"]["flagged"] and new["text_length"]["window_mean"] > new["text_length"]["reference_mean"]
    assert "embedding_mmd" not in new  # no embedder given: the test is left out, not faked


def test_input_drift_runs_the_embedding_test_through_the_given_embedder():
    ref = _reference(_texts(["a", "b"], 50, 0))
    far = drift.input_drift(_texts(["a", "b"], 50, 1), ref, DriftConfig(permutations=120),
                            embed=lambda texts: np.full((len(texts), 4), 3.0) + np.random.default_rng(0).normal(
                                size=(len(texts), 4)) * 0.1)
    assert far["embedding_mmd"]["flagged"] and far["embedding_mmd"]["rows"] == 50


def test_prediction_drift_flags_label_mix_and_confidence_shift():
    rng = np.random.default_rng(3)
    ref = _reference(["x"], confidences=rng.uniform(0.8, 1.0, 300).tolist())
    settings = DriftConfig()
    steady = drift.prediction_drift(["neg", "pos"] * 50, rng.uniform(0.8, 1.0, 100).tolist(), ref, settings)
    assert not any(t["flagged"] for t in steady.values())
    moved = drift.prediction_drift(["pos"] * 95 + ["neg"] * 5, rng.uniform(0.5, 0.7, 100).tolist(), ref, settings)
    assert moved["label_psi"]["flagged"] and moved["label_chi2"]["flagged"] and moved["confidence_ks"]["flagged"]
    assert moved["label_psi"]["window_share"] == {"neg": 0.05, "pos": 0.95}


def test_calibration_drift_needs_labels_and_flags_overconfidence():
    ref = _reference(["x"], ece=0.02)
    settings = DriftConfig()
    assert drift.calibration_drift(np.zeros((0, 2)), np.zeros(0, dtype=int), ref, settings) is None
    proba = np.tile([0.05, 0.95], (100, 1))  # sure of "pos", right only half the time
    y = np.array([0, 1] * 50)
    result = drift.calibration_drift(proba, y, ref, settings)
    assert result["flagged"] and result["window_ece"] > 0.4 and result["rows"] == 100


def test_too_few_permutations_to_ever_flag_is_a_config_error():
    from tunesmith.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match=r"monitoring.drift: .*50 permutations cannot reach p < 0.01"):
        config_from_dict({"name": "m", "data": {"path": "a.csv"}, "monitoring": {"drift": {"permutations": 50}}})
