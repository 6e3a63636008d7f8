"""Output filters (`serving.filters`) through HTTP: a classifier below the confidence floor abstains (no label, the
guess kept in the log and queued for review), generated text matching a deny pattern is refused (streamed too), PII in
generated text is redacted; every action is counted in tunesmith_filter_actions_total and stored with the prediction."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from tests.serving.serve_helpers import register, settings

from tunesmith.config import ServingConfig
from tunesmith.families.causal_lm.serve import Generation
from tunesmith.monitoring import read_predictions
from tunesmith.review import store as review_store
from tunesmith.review.enqueue import enqueue
from tunesmith.serving import prediction_log_for
from tunesmith.serving.app import create_app
from tunesmith.serving.filters import apply_filters


def _count(client, filter_: str, action: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("tunesmith_filter_actions_total{") and f'filter="{filter_}"' in line \
                and f'action="{action}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_classifier_below_the_floor_abstains_and_goes_to_review(store, tmp_path, classifier_dirs):
    register(store, tmp_path, "clf", classifier_dirs[0], champion=True)
    url = f"sqlite:///{tmp_path}/log.db"
    cfg = settings(filters={"confidence_floor": 0.999}, predictions={"url": url})
    with TestClient(create_app("clf", settings=cfg, store=store, prediction_log=prediction_log_for(cfg))) as client:
        body = client.post("/v1/classify", json={"input": ["a great film", "dull"]}).json()
        assert all(r["label"] is None and r["abstained"] for r in body["results"])
        assert all(max(r["scores"].values()) == pytest.approx(r["score"], abs=1e-5) and r["score"] < 0.999
                   for r in body["results"])  # what the model thought
        assert _count(client, "confidence_floor", "abstained") == 2
    rows = read_predictions(url, model="clf")
    assert len(rows) == 2 and all(r["output"]["abstained"] and r["output"]["label"] in ("neg", "pos") for r in rows), rows
    assert all(json.loads(r["filters"]) == ["confidence_floor:abstained"] for r in rows)
    added = enqueue(url, "clf", threshold=0.0)  # not for being unsure by the review threshold: for abstaining
    assert added["added"] == 2, added
    assert {i["source"] for i in review_store.list_items(url, "clf")} == {"low_confidence"}
    confident = settings(filters={"confidence_floor": 0.01})
    with TestClient(create_app("clf", settings=confident, store=store)) as client:
        result = client.post("/v1/classify", json={"input": "a great film"}).json()["results"][0]
        assert result["label"] in ("neg", "pos") and result["abstained"] is None


def test_generated_text_matching_a_deny_pattern_is_refused_streamed_or_not(store, tmp_path, chat_dir):
    register(store, tmp_path, "chat", chat_dir, champion=True)
    cfg = settings(filters={"deny": ["^"], "refusal": "Not here."})  # "^" matches every answer
    with TestClient(create_app("chat", settings=cfg, store=store)) as client:
        ask = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 5}
        choice = client.post("/v1/chat/completions", json=ask).json()["choices"][0]
        assert choice["message"]["content"] == "Not here." and choice["finish_reason"] == "content_filter"
        with client.stream("POST", "/v1/chat/completions", json={**ask, "stream": True}) as streamed:
            events = [line[6:] for line in streamed.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e)["choices"][0] for e in events[:-1]]
        assert "".join(c["delta"].get("content") or "" for c in chunks) == "Not here."
        assert chunks[-1]["finish_reason"] == "content_filter"
        done = client.post("/v1/completions", json={"prompt": "hi", "max_tokens": 4}).json()["choices"][0]
        assert done["text"] == "Not here." and _count(client, "deny", "refused") == 3


def test_pii_in_generated_text_is_redacted_and_bad_patterns_are_config_errors(chat_dir):
    from tunesmith.serving.models import load_served

    served = load_served(chat_dir, name="chat", version=1)
    filters = ServingConfig.model_validate({"filters": {"redact_pii": True}}).filters
    gen = Generation("write to ana.lopez@example.com or call +1 415 555 0100", 8, 12, "stop")
    shown, logged, actions, _ = apply_filters(filters, served, gen)
    assert "ana.lopez@example.com" not in shown.text and "<EMAIL" in shown.text and logged is shown
    assert actions == ["redact_pii:redacted"] and shown.completion_tokens == 12
    assert apply_filters(filters, served, Generation("nothing personal", 3, 2, "stop"))[2] == []
    with pytest.raises(ValidationError, match="not a regular expression"):
        ServingConfig.model_validate({"filters": {"deny": ["(unclosed"]}})


def test_an_answer_that_is_not_json_valid_is_generated_once_more_then_refused(store, tmp_path, chat_dir):
    from tunesmith.serving.models import load_served

    register(store, tmp_path, "chat", chat_dir, champion=True)
    schema = {"type": "object", "required": ["intent"]}
    ask = {"messages": [{"role": "user", "content": "classify: my card is lost"}], "max_tokens": 6}
    for mode, expected in (("retry", {"retried": 1, "refused": 1}), ("refuse", {"retried": 0, "refused": 1})):
        cfg = settings(filters={"json_schema": schema, "on_invalid_json": mode, "refusal": '{"intent": "unknown"}'})
        with TestClient(create_app("chat", settings=cfg, store=store)) as client:  # a tiny random model: never JSON
            choice = client.post("/v1/chat/completions", json=ask).json()["choices"][0]
            assert choice["message"]["content"] == '{"intent": "unknown"}' and choice["finish_reason"] == "content_filter"
            assert {a: _count(client, "json_schema", a) for a in ("retried", "refused")} == expected
    served = load_served(chat_dir, name="chat", version=1)
    filters = ServingConfig.model_validate({"filters": {"json_schema": schema}}).filters
    fenced = Generation('```json\n{"intent": "lost_card"}\n```', 5, 9, "stop")
    assert apply_filters(filters, served, fenced, may_retry=True)[2:] == ([], False)  # valid: untouched
    assert apply_filters(filters, served, Generation('{"other": 1}', 5, 4, "stop"), may_retry=True)[2:] == (
        ["json_schema:retried"], True)
    with pytest.raises(ValidationError, match="not a valid JSON schema"):
        ServingConfig.model_validate({"filters": {"json_schema": {"type": "nope"}}})


def test_an_extractor_withholds_entities_below_the_floor_and_the_text_goes_to_review(store, tmp_path, encoder_dir):
    """Entity-level floor: the caller gets the entities scored at or above it (`abstained` says which texts lost
    some), the log keeps every entity with the withheld ones flagged, and review queues the text."""
    from tests.serving.test_serve_extract import build_tagger

    from tunesmith.families.token_classification.serve import abstain

    kept, logged = abstain([{"text": "a", "score": 0.9}, {"text": "b", "score": 0.4}], 0.5)
    assert kept == [{"text": "a", "score": 0.9}] and logged[1] == {"text": "b", "score": 0.4, "abstained": True}
    register(store, tmp_path, "tagger", build_tagger(tmp_path / "tagger", encoder_dir), champion=True)
    url = f"sqlite:///{tmp_path}/log.db"
    cfg = settings(filters={"confidence_floor": 0.99}, predictions={"url": url})  # every entity scores ~0.97
    with TestClient(create_app("tagger", settings=cfg, store=store, prediction_log=prediction_log_for(cfg))) as client:
        body = client.post("/v1/extract", json={"input": ["great film", "", "dull plot"]}).json()
        assert body["entities"] == [[], [], []] and body["abstained"] == [True, False, True]
        assert _count(client, "confidence_floor", "abstained") == 2
    rows = sorted(read_predictions(url, model="tagger"), key=lambda r: r["idx"])
    assert [len(r["output"]) for r in rows] == [2, 0, 2] and all(e["abstained"] for e in rows[0]["output"])
    assert json.loads(rows[0]["filters"]) == ["confidence_floor:abstained"] and rows[1]["filters"] is None
    added = enqueue(url, "tagger", threshold=0.0)
    assert added["added"] == 2, added
    with TestClient(create_app("tagger", settings=settings(filters={"confidence_floor": 0.5}), store=store)) as client:
        body = client.post("/v1/extract", json={"input": "great film"}).json()
        assert len(body["entities"][0]) == 2 and body["abstained"] is None
