"""Retrieval metrics per query, the held-out corpus, and gate names with '@'."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tunesmith.config import GateRule, GatesConfig
from tunesmith.evaluation.gates import gate, unknown_gate_metrics
from tunesmith.families.embedding.evaluate import EmbeddingEvalReport, retrieval_scores, retrieval_set


def test_scores_per_query_match_hand_computed_values():
    # 3 queries over 5 documents; rankings are given by the similarity order.
    sim = np.array([
        [0.9, 0.1, 0.2, 0.3, 0.4],  # relevant {0}: rank 1
        [0.1, 0.2, 0.9, 0.8, 0.0],  # relevant {3, 1}: ranks 2 and 3
        [0.5, 0.4, 0.3, 0.2, 0.1],  # relevant {4}: rank 5
    ])
    s = retrieval_scores(sim, [{0}, {3, 1}, {4}], ks=(1, 5, 10))
    assert s["recall@1"].tolist() == [1.0, 0.0, 0.0]
    assert s["recall@5"].tolist() == [1.0, 1.0, 1.0]
    assert s["mrr@10"] == pytest.approx([1.0, 0.5, 0.2])
    dcg_2 = 1 / np.log2(3) + 1 / np.log2(4)
    idcg_2 = 1 + 1 / np.log2(3)
    assert s["ndcg@10"] == pytest.approx([1.0, dcg_2 / idcg_2, 1 / np.log2(6)])


def _bundle(test, train):
    def frame(rows):
        return pd.DataFrame(rows, columns=["query", "positive", "negatives"])

    class B:
        pass

    b = B()
    b.test, b.train, b.eval = frame(test), frame(train), frame([])
    return b


def test_corpus_is_every_document_and_relevance_is_the_test_positives():
    b = _bundle(test=[("q1", "a1", []), ("q1", "a1b", []), ("q2", "a2", ["n2"])],
                train=[("t1", "d1", []), ("t2", "a1", [])])
    rs = retrieval_set(b)
    assert rs.queries == ["q1", "q2"]
    assert set(rs.corpus) == {"a1", "a1b", "a2", "n2", "d1"}  # deduplicated; train documents are distractors
    assert [{rs.corpus[i] for i in r} for r in rs.relevant] == [{"a1", "a1b"}, {"a2"}]
    capped = retrieval_set(b, max_corpus=3)
    assert len(capped.corpus) == 3 and [{capped.corpus[i] for i in r} for r in capped.relevant] == [{"a1", "a1b"}, {"a2"}]


def test_flat_metrics_feed_gates_with_at_sign_names():
    report = EmbeddingEvalReport(
        primary_metric="mrr@10", tuned={"mrr@10": 0.6, "recall@10": 0.9}, baseline={"mrr@10": 0.5, "recall@10": 0.8},
        uplift={"mrr@10": {"delta": 0.1, "ci_low": 0.02, "ci_high": 0.2, "p_value": 0.01}})
    flat = report.flat_metrics()
    assert flat["uplift.mrr@10"] == pytest.approx(0.1) and flat["uplift_ci_low.mrr@10"] == 0.02
    policy = GatesConfig(rules=["uplift.mrr@10 > 0", "recall@10 >= 0.95"], require_significant_uplift=True)
    assert unknown_gate_metrics(policy, primary_metric="mrr@10") == []
    decision = gate(flat, policy, primary_metric="mrr@10", has_champion=False)
    assert [r.passed for r in decision.rules] == [True, False, True]
    assert GateRule.model_validate("ndcg@10 >= 0.5").metric == "ndcg@10"
