"""Served answers of every non-classifier family, as the prediction log holds them, for the review tests: what each
family logs, what a reviewer sends back on the page, and the training row that must come out."""

from __future__ import annotations

from tunesmith.monitoring.feedback import record_feedback
from tunesmith.monitoring.predictions import PredictionLog

ML_LABELS = ["billing", "other", "shipping"]
CHAT = [{"role": "system", "content": "You are the support assistant."},
        {"role": "user", "content": "How do I reset my password?"}]
TEXT = "Ada Lovelace met Babbage in London"

# kind -> (route, [(request id, input, output, confidence)])
SERVED = {
    "multi-label": ("/v1/classify", [
        ("m1", "refund for the late parcel <b>now</b>", {"label": "billing", "score": 0.55, "labels": ["billing"],
                                                          "scores": {"billing": 0.55, "other": 0.05, "shipping": 0.48}},
         0.55),
        ("m2", "where is my invoice", {"label": "billing", "score": 0.97, "labels": ["billing"],
                                       "scores": {"billing": 0.97, "other": 0.02, "shipping": 0.01}}, 0.97)]),
    "regression": ("/v1/score", [("g1", "four stars, decent", 3.1, None), ("g2", "fine", 3.0, None),
                                 ("g3", "five stars!!! <script>", 9.5, None), ("g4", "ok I guess", 2.9, None)]),
    "token-classification": ("/v1/extract", [
        ("t1", TEXT, [{"start": 0, "end": 12, "label": "PER", "score": 0.51, "text": "Ada Lovelace"}], None),
        ("t2", "Paris is big", [{"start": 0, "end": 5, "label": "LOC", "score": 0.99, "text": "Paris"}], None)]),
    "reranking": ("/v1/rerank", [
        ("k1", {"query": "reset my password", "document": "Open Settings, then Security."}, 0.52, None),
        ("k1", {"query": "reset my password", "document": "Our office opens at nine."}, 0.03, None)]),
    "embedding": ("/v1/embeddings", [
        ("e1", "reset my password", [1.0, 0.0, 0.0], None),
        ("e2", "Open Settings, then Security, then Reset password.", [0.9, 0.1, 0.0], None),
        ("e3", "Password reset: Settings > Security.", [0.9, -0.1, 0.0], None),
        ("e4", "Our office opens at nine.", [0.0, 0.0, 1.0], None)]),
    "causal-lm": ("/v1/chat/completions", [
        ("c1", CHAT, {"text": "I cannot help with that.", "finish_reason": "stop"}, None),
        ("c2", [{"role": "user", "content": "hi"}], {"text": "Hello! How can I help?", "finish_reason": "stop"},
         None)]),
}

# kind -> (the first item's text, the form a reviewer posts on it, the training row it becomes)
REVIEWED = {
    "multi-label": ("refund for the late parcel <b>now</b>", {"choice": "save", "label:billing": "on",
                                                              "label:shipping": "on"},
                    {"text": "refund for the late parcel <b>now</b>", "label": ["billing", "shipping"]}),
    "regression": ("five stars!!! <script>", {"choice": "save", "value": "5"},
                   {"text": "five stars!!! <script>", "label": 5.0}),
    "token-classification": (TEXT, {"choice": "save",
                                    "markup": "[Ada Lovelace](PER) met [Babbage](PER) in [London](LOC)"},
                             {"tokens": ["Ada", "Lovelace", "met", "Babbage", "in", "London"],
                              "tags": ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"]}),
    "reranking": ("reset my password\n\nOpen Settings, then Security.", {"choice": "grade:3"},
                  {"query": "reset my password", "document": "Open Settings, then Security.", "relevance": 3.0}),
    "embedding": ("reset my password", {"choice": "doc:0"},
                  {"query": "reset my password", "positive": "Open Settings, then Security, then Reset password.",
                   # the candidates shown and passed over: the pair's hard negatives
                   "negative": ["Password reset: Settings > Security.", "Our office opens at nine."]}),
    "causal-lm": ("How do I reset my password?", {"choice": "save", "correction": "Open Settings > Security > Reset."},
                  {"messages": [*CHAT, {"role": "assistant", "content": "Open Settings > Security > Reset."}]}),
}


def model_name(kind: str) -> str:
    return f"review-{kind}"


def seed_family(url: str, kind: str) -> str:
    """Log `kind`'s served answers under its own model name (and a thumbs-down on the first chat answer)."""
    route, rows = SERVED[kind]
    log = PredictionLog(url)
    for rid, logged, output, conf in rows:
        log.record(request_id=rid, model=model_name(kind), version=2, role="champion", route=route, input=logged,
                   output=output, confidence=conf, latency_ms=5.0, force=True)
    log.close()
    if kind == "causal-lm":
        from tunesmith.families import get

        record_feedback(url, model=model_name(kind), request_id="c1", value={"thumbs": "down"},
                        hooks=get(kind).feedback)
    return model_name(kind)
