"""Each family's drift tests on synthetic windows: traffic like the reference flags nothing of the family's own
outputs, a shifted window flags the test that watches what shifted (values, entity mix, scores, embeddings,
refusals)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import numpy as np
import pytest

from tunesmith import families
from tunesmith.config import DriftConfig
from tunesmith.families.common import text_reference

RNG = np.random.default_rng(0)
WORDS = "the film plot was great dull long short acting story music ending".split()
CONTEXT = SimpleNamespace(cfg=SimpleNamespace(seed=0))
SETTINGS = DriftConfig()


def texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 9)))) for _ in range(n)]


def rows(inputs, outputs) -> list[dict]:
    ts = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return [{"id": i, "request_id": f"r{i}", "version": 1, "ts": ts, "input": x, "output": y}
            for i, (x, y) in enumerate(zip(inputs, outputs, strict=True))]


def window(kind: str, ref: dict, window_rows: list[dict]) -> dict:
    hooks = families.get(kind).drift
    assert all(hooks.accepts(r) for r in window_rows)
    return hooks.window(window_rows, ref, SETTINGS, CONTEXT)


def test_regression_flags_predicted_values_that_moved():
    ref = {**text_reference(texts(300)), "predicted_values": RNG.normal(3, 1, 300).tolist()}
    same = window("regression", ref, rows(texts(80, 1), RNG.normal(3, 1, 80).tolist()))
    moved = window("regression", ref, rows(texts(80, 2), RNG.normal(5, 1, 80).tolist()))
    assert not same["prediction_ks"]["flagged"] and moved["prediction_ks"]["flagged"]


def test_token_classification_flags_an_entity_type_mix_that_changed():
    ref = {**text_reference(texts(300)), "entities_per_text": [1] * 300, "entity_types": {"PER": 150, "ORG": 150}}
    per, org = [{"start": 0, "end": 3, "label": "PER"}], [{"start": 0, "end": 3, "label": "ORG"}]
    same = window("token-classification", ref, rows(texts(80, 1), [per, org] * 40))
    moved = window("token-classification", ref, rows(texts(80, 2), [org] * 80))
    assert not same["entity_type_chi2"]["flagged"] and moved["entity_type_chi2"]["flagged"]
    assert moved["entity_type_psi"]["flagged"]


def test_multilabel_flags_a_label_that_stopped_being_predicted():
    ref = {**text_reference(texts(300)), "labels": ["a", "b"], "predicted_counts": {"a": 150, "b": 150},
           "confidences": RNG.uniform(0.5, 1, 300).tolist()}
    out = lambda labels: {"labels": labels, "label": labels[0], "score": 0.8, "scores": {}}  # noqa: E731
    same = window("multi-label", ref, rows(texts(80, 1), [out(["a"]), out(["b"])] * 40))
    moved = window("multi-label", ref, rows(texts(80, 2), [out(["a"])] * 80))
    assert not same["label_chi2"]["flagged"] and moved["label_chi2"]["flagged"]


def test_reranking_flags_scores_that_collapsed():
    ref = {**text_reference(texts(300)), "scores": RNG.uniform(0, 1, 300).tolist()}
    inputs = [{"query": q, "document": "d"} for q in texts(80, 1)]
    same = window("reranking", ref, rows(inputs, RNG.uniform(0, 1, 80).tolist()))
    moved = window("reranking", ref, rows(inputs, RNG.uniform(0, 0.1, 80).tolist()))
    assert not same["score_ks"]["flagged"] and moved["score_ks"]["flagged"]


def test_embedding_flags_served_vectors_that_moved_away_from_the_reference():
    base = RNG.normal(0, 1, (200, 8))
    ref = {**text_reference(texts(300)), "embeddings": base.tolist()}
    same = window("embedding", ref, rows(texts(60, 1), RNG.normal(0, 1, (60, 8)).tolist()))
    moved = window("embedding", ref, rows(texts(60, 2), RNG.normal(1.5, 1, (60, 8)).tolist()))
    assert not same["embedding_mmd"]["flagged"] and moved["embedding_mmd"]["flagged"]
    assert not same["nearest_neighbour_ks"]["flagged"] and moved["nearest_neighbour_ks"]["flagged"]
    # queries of a kind never seen: far from every held-out query, though the window's mean did not move
    clusters = RNG.normal(0, 1, (4, 8)) * 4
    clustered = clusters[RNG.integers(0, 4, 200)] + RNG.normal(0, 0.3, (200, 8))
    ref = {**text_reference(texts(300)), "embeddings": clustered.tolist()}
    near = clusters[RNG.integers(0, 4, 60)] + RNG.normal(0, 0.3, (60, 8))
    between = (clusters[RNG.integers(0, 4, 60)] + clusters[RNG.integers(0, 4, 60)]) / 2 + RNG.normal(0, 0.3, (60, 8))
    assert not window("embedding", ref, rows(texts(60, 3), near.tolist()))["nearest_neighbour_ks"]["flagged"]
    assert window("embedding", ref, rows(texts(60, 4), between.tolist()))["nearest_neighbour_ks"]["flagged"]


@pytest.mark.parametrize("logged", ["messages", "prompt"])
def test_chat_flags_a_model_that_started_refusing(logged):
    answers = ["Refunds take five days to arrive."] * 190 + ["I'm sorry, I can't help with that."] * 10
    ref = {**text_reference(texts(200)), "answer_lengths": [len(a.split()) for a in answers], "refusals": 10,
           "answers": 200}
    prompts = texts(60, 3)
    inputs = [[{"role": "user", "content": p}] for p in prompts] if logged == "messages" else prompts
    out = lambda text: {"text": text, "finish_reason": "stop", "prompt_tokens": 5, "completion_tokens": 6}  # noqa: E731
    same = window("causal-lm", ref, rows(inputs, [out("Refunds take five days to arrive.")] * 57
                                         + [out("I'm sorry, I can't help with that.")] * 3))
    refusing = window("causal-lm", ref, rows(inputs, [out("I am sorry, I cannot help with refunds.")] * 30
                                             + [out("Refunds take five days to arrive.")] * 30))
    assert not same["refusal_rate"]["flagged"] and refusing["refusal_rate"]["flagged"]
    assert refusing["refusal_rate"]["window_rate"] == 0.5 and refusing["refusal_rate"]["reference_rate"] == 0.05
