"""`tunesmith run` for a reranker on a tiny BERT: malformed candidates quarantined, MRR@10 / nDCG@10 against the base
bi-encoder with CIs over queries, a CrossEncoder dir that sentence-transformers loads unchanged, and /v1/rerank."""

from __future__ import annotations

import json

import pytest
from tests.integration.test_cli_run import tunesmith
from tests.toy_rerank import make_candidates

pytestmark = pytest.mark.integration


def test_reranking_run_registers_a_cross_encoder_sentence_transformers_and_the_server_load(
        tmp_path, tiny_model_dir, monkeypatch):
    from sentence_transformers import CrossEncoder

    rows = make_candidates(60, seed=5).to_dict("records")
    rows[2] = {"query": rows[2]["query"], "relevance": 1}  # line 3: no document
    rows[4] = {**rows[4], "relevance": "high"}  # line 5: not a number
    (tmp_path / "cands.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"name": "toy-rerank", "task": "reranking", "seed": 0,
           "data": {"path": "cands.jsonl", "split": {"eval": 0.15, "test": 0.25}},
           "model": {"base": tiny_model_dir, "max_length": 32},
           "training": {"epochs": 3, "batch_size": 16, "learning_rate": 3e-3, "early_stopping_patience": None},
           "evaluation": {"bootstrap": {"samples": 200}}, "gates": ["ndcg@10 >= 0.3", "mrr@10 >= 0.3"]}
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))
    out = tunesmith("run", "config.yaml", cwd=tmp_path).stdout
    assert "gate decision: PASSED" in out and "registered toy-rerank version 1" in out and "mrr@10" in out

    run = next((tmp_path / ".tunesmith/runs/toy-rerank").iterdir())
    quarantine = [json.loads(line) for line in (run / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["source"].rsplit("/", 1)[-1], q["reason"]) for q in quarantine] == [
        ("cands.jsonl:3", "missing_document"), ("cands.jsonl:5", "invalid_relevance")]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["queries"] >= 10 and metrics["baseline_model"]["method"].startswith("the base model as a bi-encoder")
    for key in ("mrr@10", "ndcg@10", "baseline.mrr@10", "uplift.ndcg@10", "uplift_ci_low.mrr@10"):
        assert key in metrics["flat"], key
    assert "Baseline vs tuned (test queries)" in (run / "report.html").read_text()

    model = CrossEncoder(str(run / "model"), device="cpu")  # unchanged: sentence-transformers' own loader
    query, docs = "great film 0", ["a great film", "an awful movie", "the plot"]
    scores = model.predict([(query, d) for d in docs])
    assert scores.shape == (3,) and ((scores > 0) & (scores < 1)).all()  # sigmoid relevance

    from fastapi.testclient import TestClient
    from tests.serving.serve_helpers import settings

    from tunesmith.registry import open_store, promote
    from tunesmith.serving import create_app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNESMITH_SERVE_TOKEN", raising=False)
    store = open_store(workdir=tmp_path)
    promote("toy-rerank", store=store)
    with TestClient(create_app("toy-rerank", settings=settings(), store=store)) as client:
        body = client.post("/v1/rerank", json={"query": query, "documents": docs, "top_n": 2}).json()
        wrong = client.post("/v1/classify", json={"input": "great"})
    expected = sorted(range(3), key=lambda i: -scores[i])[:2]
    assert [r["index"] for r in body["results"]] == expected
    assert [r["score"] for r in body["results"]] == pytest.approx([float(scores[i]) for i in expected], abs=1e-4)
    assert body["results"][0]["document"] == docs[expected[0]]
    assert wrong.status_code == 400 and "/v1/rerank" in wrong.json()["error"]["message"]
