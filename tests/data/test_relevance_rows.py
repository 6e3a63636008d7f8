"""Reranking rows in the data stage: malformed candidates quarantined with file:line, query-keyed splits, and
ranking metrics on hand-checked lists."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.toy_rerank import make_candidates

from tunesmith.config import ConfigError, config_from_dict
from tunesmith.data import prepare_data
from tunesmith.data.errors import DataError
from tunesmith.families.reranking.evaluate import ranking_scores


def _cfg(path, **data):
    checks = {"pii": {"presidio": "off"}}  # regex PII only: no spaCy load in a data-stage test
    return config_from_dict({"name": "r", "task": "reranking", "data": {"path": str(path), "checks": checks, **data}})


def test_malformed_candidates_are_quarantined_and_queries_never_straddle_splits(tmp_path):
    rows = make_candidates(40).to_dict("records")
    rows[1] = {"query": "great film 0", "relevance": 1}  # no document
    rows[2] = {"query": "great film 0", "document": "a film", "relevance": "very"}  # not a number
    rows[3] = {"query": "great film 0", "document": "a film", "relevance": -1}  # negative
    path = tmp_path / "cands.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    bundle = prepare_data(_cfg(path), tmp_path / "run")
    assert bundle.report.quarantined_by_reason == {"invalid_relevance": 2, "missing_document": 1}
    records = [json.loads(x) for x in (tmp_path / "run/quarantine.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [f"{path}:{n}" for n in (2, 3, 4)]
    assert "'very', not a number" in records[1]["detail"]
    frames = (bundle.train, bundle.eval, bundle.test)
    assert sum(len(f) for f in frames) == len(rows) - 3
    queries = [set(f["query"]) for f in frames]
    assert not (queries[0] & queries[1]) and not (queries[0] & queries[2]) and not (queries[1] & queries[2])
    assert set(bundle.train.columns) >= {"query", "document", "relevance"}
    assert bundle.report.checks["duplicates"]["rows"] == 0  # a query's candidates are not each other's duplicates
    with pytest.raises(DataError, match=rf"{path}:2: no document in column 'document'"):
        prepare_data(_cfg(path, bad_rows="fail"))


def test_reranking_config_refusals():
    with pytest.raises(ConfigError, match="method.kind: head is not supported for reranking"):
        config_from_dict({"name": "r", "task": "reranking", "data": {"path": "x"}, "method": {"kind": "head"}})
    with pytest.raises(ConfigError, match="reranker checkpoints are chosen on eval loss"):
        config_from_dict({"name": "r", "task": "reranking", "data": {"path": "x"}, "training": {"metric": "accuracy"}})


def test_ranking_scores_by_hand():
    relevance = np.array([0, 1, 0, 2, 0, 0], dtype=float)
    groups = [np.array([0, 1, 2]), np.array([3, 4, 5])]
    scores = np.array([0.9, 0.5, 0.1, 0.2, 0.8, 0.1])  # query 1: relevant at rank 2; query 2: relevant at rank 2
    got = ranking_scores(groups, scores, relevance)
    assert got["mrr@10"].tolist() == [0.5, 0.5]
    assert got["ndcg@10"] == pytest.approx([1 / np.log2(3), 1 / np.log2(3)])
    perfect = ranking_scores(groups, relevance.copy(), relevance)
    assert perfect["mrr@10"].tolist() == [1.0, 1.0] and perfect["ndcg@10"].tolist() == [1.0, 1.0]
