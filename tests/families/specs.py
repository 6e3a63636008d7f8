"""What the contract suite needs per family: a small data file with one bad row, a config that trains a tiny model in
seconds, and a good and a bad request for the family's route."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.toy import POSITIVE, make_reviews
from tests.toy_chat import make_chats
from tests.toy_images import write_texture_tiles
from tests.toy_multilabel import make_multilabel
from tests.toy_pairs import make_pairs
from tests.toy_rerank import make_candidates
from tests.toy_tokens import make_tagged

from tunesmith.families.image_classification.serve import EXAMPLES as IMAGE_EXAMPLES

# fallback off: the contract checks what the configured method trains (a head-only candidate, chosen when one tiny
# epoch loses to the probe on eval, would leave the encoder untouched; tests/tuning/test_auto_search.py tests it)
FAST = {"epochs": 1, "batch_size": 8, "learning_rate": 3e-3, "early_stopping_patience": None, "fallback": "off"}


@dataclass
class Spec:
    kind: str
    write_data: Callable[[Path], tuple[str, str]]  # -> (file name, the bad row's "file:line" suffix)
    bad_reason: str
    route: str
    good: dict
    bad: dict
    answer_key: str  # a key every good answer's body has
    base: str = "bert"  # bert | llama | toy
    extra: dict = field(default_factory=dict)  # more config
    frozen: tuple[str, ...] = ("embeddings.", "encoder.layer.0.")  # what method freeze keeps as the base had it
    trained: str = "encoder.layer.1."  # some of these change
    # The MLflow pyfunc's input example as a request to the route, and the route's answer as one value per row
    route_request: Callable[[dict], dict] = lambda example: {"input": list(example["text"])}
    route_answers: Callable[[dict], list] = lambda body: body["results"]
    pyfunc_view: Callable = lambda result: result  # the part of a pyfunc row's result the route answers
    pyfunc_params: dict = field(default_factory=dict)  # the route request's settings, as the pyfunc's params
    # POST /v1/feedback on the good request's answer: (index, a value the family takes, one it refuses); None: the
    # family takes no feedback
    feedback: tuple[int, Any, Any] | None = None
    drift_test: str = ""  # a drift test of the family's own outputs that `monitor` runs on its window


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _classification(tmp: Path):
    df = make_reviews(90, seed=1)
    df.loc[4, "text"] = ""  # line 6 of the CSV (header, then 0-based row 4): an empty cell is a missing text
    df.to_csv(tmp / "reviews.csv", index=False)
    return "reviews.csv", "reviews.csv:6"


def _multilabel(tmp: Path):
    rows = make_multilabel(90, seed=3).to_dict("records")
    rows[3] = {"text": "the plot was a film", "label": []}  # line 4: an empty label list
    _jsonl(tmp / "tags.jsonl", rows)
    return "tags.jsonl", "tags.jsonl:4"


def _regression(tmp: Path):
    df = make_reviews(90, seed=4)
    df["stars"] = [str(10.0 + 4 * sum(w in POSITIVE for w in t.split())) for t in df["text"]]
    df.loc[6, "stars"] = "lots"  # line 8: not a number
    df.drop(columns=["label"]).to_csv(tmp / "stars.csv", index=False)
    return "stars.csv", "stars.csv:8"


def _tokens(tmp: Path):
    rows = make_tagged(90, seed=1).to_dict("records")
    rows[2] = {"tokens": ["dull", "film"], "tags": ["B-BAD"]}  # line 3: a tag short
    _jsonl(tmp / "tagged.jsonl", rows)
    return "tagged.jsonl", "tagged.jsonl:3"


def _pairs(tmp: Path):
    rows = make_pairs(90, seed=11, negatives=True).to_dict("records")
    rows[4] = {"query": "a query without its answer"}  # line 5
    _jsonl(tmp / "pairs.jsonl", rows)
    return "pairs.jsonl", "pairs.jsonl:5"


def _candidates(tmp: Path):
    rows = make_candidates(24, seed=5).to_dict("records")
    rows[4] = {**rows[4], "relevance": "high"}  # line 5: not a number
    _jsonl(tmp / "cands.jsonl", rows)
    return "cands.jsonl", "cands.jsonl:5"


def _chats(tmp: Path):
    rows = make_chats(60, seed=5)
    rows[3] = {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "hi"}]}  # line 4
    _jsonl(tmp / "chats.jsonl", rows)
    return "chats.jsonl", "chats.jsonl:4"


def _keywords(tmp: Path):
    rows = [{"text": t, "label": "yes" if "great" in t.split() else "no"} for t in make_reviews(120, seed=7)["text"]]
    rows[2] = {"text": "", "label": "no"}  # line 3: an empty text
    _jsonl(tmp / "keywords.jsonl", rows)
    return "keywords.jsonl", "keywords.jsonl:3"


def _images(tmp: Path):
    rows = write_texture_tiles(tmp, per_class=20, seed=2)
    rows[4] = {"image": "brick/missing.png", "label": "brick"}  # line 6 of the CSV: the file does not exist
    import pandas as pd

    pd.DataFrame(rows).to_csv(tmp / "images.csv", index=False)
    return "images.csv", "images.csv:6"


TEXTS = {"input": ["great film", "dull plot"]}
NO_TEXTS = {"input": []}

SPECS = {
    "classification": Spec("classification", _classification, "missing_text", "/v1/classify", TEXTS, NO_TEXTS,
                           "results", feedback=(1, "neg", "meh"), drift_test="label_psi"),
    "multi-label": Spec("multi-label", _multilabel, "empty_labels", "/v1/classify", TEXTS, NO_TEXTS, "results",
                        extra={"data": {"multi_label": True}}, feedback=(0, ["praise", "acting"], ["praise", "nope"]),
                        drift_test="label_psi"),
    "regression": Spec("regression", _regression, "invalid_target", "/v1/score", TEXTS, NO_TEXTS, "scores",
                       extra={"data": {"label_column": "stars"}}, route_answers=lambda body: body["scores"],
                       feedback=(0, 17.5, "lots"), drift_test="prediction_ks"),
    "token-classification": Spec("token-classification", _tokens, "tags_length", "/v1/extract", TEXTS, NO_TEXTS,
                                 "entities", route_answers=lambda body: body["entities"],
                                 feedback=(0, [{"start": 0, "end": 5, "label": "GOOD"}],
                                           [{"start": 6, "end": 40, "label": "GOOD"}]),
                                 drift_test="entities_per_text_ks"),
    "embedding": Spec("embedding", _pairs, "missing_positive", "/v1/embeddings", TEXTS, NO_TEXTS, "data",
                      extra={"data": {"split": {"eval": 0.15, "test": 0.25}}},
                      route_answers=lambda body: [d["embedding"] for d in body["data"]],
                      feedback=(0, {"document": "a great story"}, {"document": ""}),
                      drift_test="embedding_mmd"),
    "reranking": Spec("reranking", _candidates, "invalid_relevance", "/v1/rerank",
                      {"query": "great film", "documents": ["a great story", "dull"]},
                      {"query": "great film", "documents": []}, "results",
                      extra={"data": {"split": {"eval": 0.15, "test": 0.25}}},
                      route_request=lambda ex: {"query": ex["query"][0], "documents": list(ex["document"])},
                      route_answers=lambda body: [r["score"] for r in sorted(body["results"],
                                                                             key=lambda r: r["index"])],
                      feedback=(1, 2, -1), drift_test="score_ks"),
    "causal-lm": Spec("causal-lm", _chats, "wrong_role", "/v1/chat/completions",
                      {"messages": [{"role": "user", "content": "refund please"}], "max_tokens": 4},
                      {"messages": []}, "choices", base="llama",
                      extra={"data": {"split": {"eval": 0.1, "test": 0.15}}, "evaluation": {"samples": 1},
                             "chat": {"max_new_tokens": 4}},
                      frozen=("model.embed_tokens.", "model.layers.0."), trained="model.layers.1.",
                      route_request=lambda ex: {"messages": ex["messages"][0], "max_tokens": 8},
                      route_answers=lambda body: [c["message"]["content"] for c in body["choices"]],
                      pyfunc_view=lambda result: result["text"], pyfunc_params={"max_tokens": 8},
                      feedback=(0, {"thumbs": "down", "correction": "Refunds take five days."}, {"thumbs": "meh"}),
                      drift_test="refusal_rate"),
    "image-classification": Spec("image-classification", _images, "missing_image", "/v1/classify-image",
                                 {"images": list(IMAGE_EXAMPLES)}, {"images": ["JVBERi0xLjQgbm90IGFuIGltYWdl"]},  # 415: a PDF
                                 "results", base="vit",
                                 frozen=("vit.embeddings.", "vit.encoder.layer.0."), trained="vit.encoder.layer.1.",
                                 route_request=lambda ex: {"images": list(ex["image"])}),
    "toy-keywords": Spec("toy-keywords", _keywords, "empty_text", "/v1/toy-keywords", TEXTS, NO_TEXTS, "scores",
                         base="toy", frozen=("embed.",), trained="head.", route_answers=lambda body: body["scores"]),
}
