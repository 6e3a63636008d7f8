"""POST /v1/extract on a loopback server: entities as character spans into each input, batched, logged."""

from __future__ import annotations

import httpx
import torch
from tests.serving.serve_helpers import LiveServer, register, settings, wait_for

from tunesmith.monitoring import PredictionLog, read_predictions
from tunesmith.serving import create_app, detect_family

TAGS = ["O", "B-GOOD", "I-GOOD", "B-BAD", "I-BAD"]


def build_tagger(path, encoder_dir):
    """A 2-layer BERT token classifier whose head tags every word B-GOOD (bias), so entities are predictable."""
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    config = BertConfig.from_pretrained(encoder_dir)
    config.id2label, config.label2id = dict(enumerate(TAGS)), {t: i for i, t in enumerate(TAGS)}
    config.architectures = ["BertForTokenClassification"]
    torch.manual_seed(0)
    model = BertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 5.0, 0.0, 0.0, 0.0]))
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(encoder_dir).save_pretrained(path)
    return path


def test_extract_route_returns_character_spans_and_logs_the_prediction(tmp_path, store, encoder_dir):
    model_dir = build_tagger(tmp_path / "tagger", encoder_dir)
    assert detect_family(model_dir) == "token-classification"
    register(store, tmp_path, "tagger", model_dir, champion=True)
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    log = PredictionLog(url)
    app = create_app("tagger", settings=settings(max_wait_ms=20), store=store, prediction_log=log)
    texts = ["great  film, dull!", "", "the plot"]
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        body = client.post("/v1/extract", json={"input": texts}).json()
        assert client.post("/v1/classify", json={"input": "x"}).status_code == 400  # not this model's route
    ents = body["entities"]
    assert len(ents) == 3 and ents[1] == [] and body["model_version"] == 1
    # every word is B-GOOD: one single-word entity per word, offsets into the raw text (punctuation is a word)
    assert [(e["start"], e["end"], e["text"]) for e in ents[0]] == [
        (0, 5, "great"), (7, 11, "film"), (11, 12, ","), (13, 17, "dull"), (17, 18, "!")]
    for text, found in zip(texts, ents, strict=True):
        for e in found:
            assert text[e["start"]:e["end"]] == e["text"] and e["label"] == "GOOD" and 0.5 < e["score"] <= 1
    log.flush()
    assert wait_for(lambda: len(read_predictions(url, model="tagger")) == 3)
    rows = read_predictions(url, model="tagger")
    assert {r["route"] for r in rows} == {"/v1/extract"} and any("great" in str(r["input"]) for r in rows)
    logged = next(r for r in rows if r["input"] == texts[0])
    assert logged["output"] == ents[0] and logged["confidence"] == min(e["score"] for e in ents[0])
