"""Feedback in every family's shape: each family's check keeps what it should and refuses the rest in the user's
terms; the store keeps the checked value as JSON beside a short summary; a chat completion's `id` finds its request;
imports read JSON cells; a feedback table from before the `value` column gets it without losing a row."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tunesmith import families
from tunesmith.monitoring.feedback import (
    FeedbackError,
    feedback_rows,
    import_feedback,
    read_feedback,
    record_feedback,
)
from tunesmith.monitoring.predictions import PredictionLog, add_new_columns, db_engine

TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def hooks(kind: str):
    return families.get(kind).feedback


@pytest.mark.parametrize(("kind", "value", "labels", "logged", "stored", "summary"), [
    ("classification", "pos", ["neg", "pos"], "great film", "pos", "pos"),
    ("multi-label", ["b", "a", "b"], ["a", "b", "c"], "text", ["a", "b"], "a|b"),
    ("multi-label", "c", ["a", "b", "c"], "text", ["c"], "c"),
    ("regression", "4.5", None, "text", 4.5, "4.5"),
    ("token-classification", [{"start": 4, "end": 7, "label": "ORG"}, {"start": 0, "end": 3, "label": "PER"}], TAGS,
     "Ann IBM", [{"start": 0, "end": 3, "label": "PER", "text": "Ann"},
                 {"start": 4, "end": 7, "label": "ORG", "text": "IBM"}], "2 entities"),
    ("token-classification", [], TAGS, "no names here", [], "0 entities"),
    ("embedding", "Open Settings, then Security.", None, "reset password",
     {"document": "Open Settings, then Security.", "relevance": 1.0}, "1: Open Settings, then Security."),
    ("embedding", {"document": "d", "negatives": ["x", "d", "x", "y"]}, None, "q",  # deduplicated, never the document
     {"document": "d", "relevance": 1.0, "negatives": ["x", "y"]}, "1: d"),
    ("reranking", True, None, {"query": "q", "document": "d"}, 1.0, "1"),
    ("reranking", 2, None, {"query": "q", "document": "d"}, 2.0, "2"),
    ("causal-lm", "up", None, [{"role": "user", "content": "hi"}], {"thumbs": "up"}, "up"),
    ("causal-lm", {"thumbs": "down", "correction": "Refunds take five days."}, None, [],
     {"thumbs": "down", "correction": "Refunds take five days."}, "down (corrected)"),
])
def test_each_family_keeps_its_feedback_normalized(kind, value, labels, logged, stored, summary):
    got = hooks(kind).check(value, labels, logged)
    assert got == stored and hooks(kind).summary(got) == summary


@pytest.mark.parametrize(("kind", "value", "labels", "logged", "message"), [
    ("classification", "meh", ["neg", "pos"], "t", "'meh' is not one of the model's labels (neg, pos)"),
    ("multi-label", [], ["a"], "t", "non-empty list"),
    ("multi-label", ["a", "z"], ["a"], "t", "'z' is not one of the model's labels"),
    ("regression", "lots", None, "t", "the true value must be a number"),
    ("regression", float("nan"), None, "t", "finite"),
    ("embedding", {"document": "d", "negatives": "x"}, None, "q", "negatives: a list of documents"),
    ("token-classification", [{"start": 0, "end": 30, "label": "PER"}], TAGS, "Ann", "past the text's 3 characters"),
    ("token-classification", [{"start": 0, "end": 3, "label": "PER", "text": "Bob"}], TAGS, "Ann met IBM",
     "the logged text has 'Ann' at 0-3, not 'Bob'"),
    ("token-classification", [{"start": 8, "end": 25, "label": "PER"}], TAGS, "Call <PHONE> now",
     "the logged text is redacted: <PHONE> replaced personal data"),
    ("token-classification", [{"start": 0, "end": 3, "label": "LOC"}], TAGS, "Ann", "not one of the model's entity "
     "types (ORG, PER)"),
    ("token-classification", [{"start": 0, "end": 3, "label": "PER"}, {"start": 2, "end": 5, "label": "ORG"}], TAGS,
     "Ann IBM", "overlap"),
    ("token-classification", [{"start": "0", "end": 3, "label": "PER"}], TAGS, "Ann", "integer character offsets"),
    ("embedding", {"document": "   "}, None, "q", "the document the user accepted"),
    ("embedding", {"document": "d", "relevance": -1}, None, "q", "relevance must be a finite number >= 0"),
    ("embedding", {"document": "d", "score": 1}, None, "q", "unknown field(s) score"),
    ("reranking", -0.5, None, {}, "relevance must be a finite number >= 0"),
    ("causal-lm", {"thumbs": "sideways"}, None, [], '"thumbs": "up" or "down"'),
    ("causal-lm", {"thumbs": "down", "correction": ""}, None, [], "correction must be a non-empty text"),
])
def test_each_family_refuses_what_is_not_its_feedback(kind, value, labels, logged, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        hooks(kind).check(value, labels, logged)


@pytest.fixture()
def chat_log(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    log = PredictionLog(url)
    log.record(request_id="abc123", model="support", version=1, role="champion", route="/v1/chat/completions",
               input=[{"role": "user", "content": "where is my refund"}], output={"text": "soon"},
               confidence=None, latency_ms=3.0)
    log.close()
    return url


def test_a_chat_completion_id_finds_its_request_and_the_value_is_stored_as_json(chat_log):
    row = record_feedback(chat_log, model="support", request_id="chatcmpl-abc123", hooks=hooks("causal-lm"),
                          value={"thumbs": "down", "correction": "Your refund arrives in five days."})
    assert row["request_id"] == "abc123" and row["new"]
    [stored] = read_feedback(chat_log, "support")
    assert json.loads(stored["value"]) == {"thumbs": "down", "correction": "Your refund arrives in five days."}
    assert stored["label"] == "down (corrected)" and "where is my refund" in stored["text"]
    again = record_feedback(chat_log, model="support", request_id="abc123", hooks=hooks("causal-lm"),
                            value={"correction": "Your refund arrives in five days.", "thumbs": "down"})
    assert not again["new"]  # the same feedback, keys in another order: stored once
    with pytest.raises(FeedbackError, match='give {"thumbs"') as bad:
        record_feedback(chat_log, model="support", request_id="abc123", hooks=hooks("causal-lm"), value=["up"])
    assert bad.value.status == 422


def test_an_import_reads_json_cells_and_names_each_bad_line(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    path = tmp_path / "labels.csv"
    path.write_text('text,value\nacting and a great plot,"[""praise"", ""acting""]"\nawful,"[""nope""]"\nfine,praise\n')
    result = import_feedback(url, path, model="tags", labels=["praise", "complaint", "acting"],
                             hooks=hooks("multi-label"))
    assert result.imported == 2 and result.bad == [f"{path}:3: label 'nope' is not one of the model's labels "
                                                   "(praise, complaint, acting)"]
    assert sorted(r["label"] for r in read_feedback(url, "tags")) == ["acting|praise", "praise"]


def test_a_feedback_table_from_before_the_value_column_gets_it_and_keeps_its_rows(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the table as tunesmith created it before feedback values existed
        conn.execute(sa.text(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY, key VARCHAR(64) NOT NULL UNIQUE, ts DATETIME NOT NULL, "
            "model VARCHAR(200) NOT NULL, request_id VARCHAR(64), idx INTEGER NOT NULL, text TEXT NOT NULL, "
            "label VARCHAR(200) NOT NULL, source VARCHAR(32) NOT NULL, labeled_by VARCHAR(200), "
            "labeled_at DATETIME NOT NULL)"))
        conn.execute(sa.text("INSERT INTO feedback (key, ts, model, idx, text, label, source, labeled_at) VALUES "
                             "('k1', '2026-11-01 10:00:00', 'm', 0, 'old text', 'neg', 'import', '2026-11-01 10:00:00')"))
    engine.dispose()
    record_feedback(url, model="m", text="new text", label="pos", labels=["neg", "pos"])
    rows = read_feedback(url, "m")
    assert [(r["text"], r["label"], r["value"]) for r in rows] == [("old text", "neg", None),
                                                                  ("new text", "pos", '"pos"')]
    assert add_new_columns(db_engine(url)) == []  # once added, nothing more to do


def test_feedback_becomes_the_training_row_of_the_served_answer_or_says_why_not(chat_log):
    chat = hooks("causal-lm")
    asked = [{"role": "user", "content": "where is my refund"}]
    assert chat.to_row(asked, {"text": "soon"}, {"thumbs": "up"})["messages"][-1] == {"role": "assistant",
                                                                                         "content": "soon"}
    fixed = chat.to_row(asked, {"text": "soon"}, {"thumbs": "down", "correction": "In five days."})
    assert fixed["messages"] == [*asked, {"role": "assistant", "content": "In five days."}]
    with pytest.raises(ValueError, match="thumbs-down without a correction"):
        chat.to_row(asked, {"text": "soon"}, {"thumbs": "down"})
    with pytest.raises(ValueError, match="relevance 0"):
        hooks("embedding").to_row("reset password", [0.1], {"document": "d", "relevance": 0.0})
    record_feedback(chat_log, model="support", request_id="chatcmpl-abc123", hooks=chat, value={"thumbs": "up"})
    record_feedback(chat_log, model="support", request_id="abc123", hooks=chat, value={"thumbs": "down"},
                    labeled_by="ann")
    rows, skipped = feedback_rows(chat_log, "support", chat)
    assert [r["row"]["messages"][-1]["content"] for r in rows] == ["soon"]  # the logged answer, rated up
    assert len(skipped) == 1 and "without a correction" in skipped[0]["reason"]
    with pytest.raises(ValueError, match="does not become training rows"):
        feedback_rows(chat_log, "support", None)


def test_the_log_schema_is_checked_once_per_url_per_process_and_again_for_a_new_file(tmp_path, monkeypatch):
    import tunesmith.monitoring.predictions as predictions

    calls = []
    real = predictions.add_new_columns
    monkeypatch.setattr(predictions, "add_new_columns", lambda engine, meta=None: calls.append(1) or real(engine, meta))
    url = f"sqlite:///{tmp_path}/once.db"
    for _ in range(3):  # what every POST /v1/feedback does
        db_engine(url).dispose()
    assert len(calls) == 1
    (tmp_path / "once.db").unlink()  # a file removed under the process is created again, with its tables
    engine = db_engine(url)
    assert len(calls) == 2 and "feedback" in sa.inspect(engine).get_table_names()
    engine.dispose()
