"""`tunesmith run` for multi-label classification on a tiny BERT: bad label lists quarantined with file:line,
thresholds tuned on eval and shipped with the model, transformers' pipeline giving sigmoid scores, and /v1/classify
answering the labels above their thresholds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.integration.test_cli_run import tunesmith
from tests.toy_multilabel import make_multilabel

pytestmark = pytest.mark.integration
LABELS = ["praise", "complaint", "acting"]


def test_multilabel_run_ships_thresholds_the_pipeline_and_server_use(tmp_path, tiny_model_dir, monkeypatch):
    from transformers import pipeline

    rows = make_multilabel(180, seed=3).to_dict("records")
    rows[3] = {"text": "the plot was a film", "label": []}  # line 4: an empty label list
    rows[5] = {"text": "the story", "label": ["praise", "gossip"]}  # line 6: a label outside data.labels
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"name": "toy-tags", "seed": 0,
           "data": {"path": "reviews.jsonl", "multi_label": True, "labels": LABELS,
                    "checks": {"label_issues": {"features": "tfidf", "min_rows": 50}}},
           "model": {"base": tiny_model_dir, "max_length": 24},
           "training": {"epochs": 6, "batch_size": 8, "learning_rate": 3e-3, "early_stopping_patience": None,
                        "class_weights": True},
           "evaluation": {"bootstrap": {"samples": 200}}, "gates": ["micro_f1 >= 0.3", "hamming_loss <= 0.6"]}
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))
    out = tunesmith("run", "config.yaml", cwd=tmp_path).stdout
    assert "gate decision: PASSED" in out and "registered toy-tags version 1" in out and "micro_f1" in out

    run = next((tmp_path / ".tunesmith/runs/toy-tags").iterdir())
    quarantine = [json.loads(line) for line in (run / "quarantine.jsonl").read_text().splitlines()]
    assert [(q["source"].rsplit("/", 1)[-1], q["reason"]) for q in quarantine] == [
        ("reviews.jsonl:4", "empty_labels"), ("reviews.jsonl:6", "unknown_label")]
    card = json.loads((run / "data_card.json").read_text())
    assert card["checks"]["label_issues"]["model"].startswith("one-vs-rest") and card["checks"]["imbalance"]["fix"]
    assert set(card["label_distribution"]["train"]) == set(LABELS)
    metrics = json.loads((run / "metrics.json").read_text())
    shipped = json.loads((run / "model" / "thresholds.json").read_text())
    assert shipped["fitted_on"] == "eval" and set(shipped["thresholds"]) == set(LABELS)
    assert {k: v["threshold"] for k, v in metrics["per_label"].items()} == shipped["thresholds"]
    for key in ("micro_f1", "macro_f1", "subset_accuracy", "ece", "baseline.micro_f1", "uplift_ci_low.micro_f1"):
        assert key in metrics["flat"], key
    page = (run / "report.html").read_text()
    assert "Per label (tuned)" in page and "Calibration per label" in page

    texts = ["great actor and awful plot", "the film was dull", "a charming story"]
    pipe = pipeline("text-classification", model=str(run / "model"), top_k=None, device="cpu")
    got = [{d["label"]: d["score"] for d in res} for res in pipe(texts)]
    from tunesmith.evaluation.scoring import load_classifier
    from tunesmith.families.multilabel.model import predict_proba

    model, tokenizer = load_classifier(run / "model")
    proba = predict_proba(model, tokenizer, texts)
    names = [model.config.id2label[i] for i in range(3)]
    for row, scores in zip(proba, got, strict=True):  # sigmoid per label, not a softmax over labels
        assert [scores[n] for n in names] == pytest.approx(row.tolist(), abs=1e-5)
    assert any(abs(sum(s.values()) - 1) > 0.05 for s in got)

    from fastapi.testclient import TestClient
    from tests.serving.serve_helpers import settings

    from tunesmith.registry import open_store, promote
    from tunesmith.serving import create_app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNESMITH_SERVE_TOKEN", raising=False)
    store = open_store(workdir=tmp_path)
    promote("toy-tags", store=store)
    with TestClient(create_app("toy-tags", settings=settings(), store=store)) as client:
        body = client.post("/v1/classify", json={"input": texts}).json()
    for res, row in zip(body["results"], proba, strict=True):
        above = [n for n, p in sorted(zip(names, row, strict=True), key=lambda x: -x[1])
                 if p >= shipped["thresholds"][n]]
        assert res["labels"] == above and res["scores"] == pytest.approx(dict(zip(names, row.tolist(), strict=True)), abs=1e-4)
    assert np.isclose(body["results"][0]["score"], proba[0].max(), atol=1e-4)
