"""Served traffic for the closed-loop simulation of every family: the data a champion trains on (the movie
vocabulary), an in-distribution stream like it, and a shifted stream (the product vocabulary, which the champion never
saw), each item with the truth a user or reviewer would send back as the family's feedback.

The words of the two mixes are whole tokens of the loop's tiny BERT (tests/monitoring/loop_data.py), and a shifted
word's embedding is still its random initialization in the champion: the champion answers the shifted stream badly
until a challenger trains on the feedback. Where the answer could be read off shared words (retrieval, reranking),
a query and its document are linked by a pairing of two word lists instead, which only training teaches.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.monitoring.loop_data import PRODUCT_NEG, PRODUCT_NEUTRAL, PRODUCT_POS
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE


@dataclass(frozen=True)
class Mix:
    pos: list[str]
    neg: list[str]
    neutral: list[str]


MOVIE = Mix(POSITIVE, NEGATIVE, [w for w in NEUTRAL if w != "actor"])
PRODUCT = Mix(PRODUCT_POS, PRODUCT_NEG, PRODUCT_NEUTRAL)


def _mix(shifted: bool) -> Mix:
    return PRODUCT if shifted else MOVIE


@dataclass(frozen=True)
class Item:
    request: dict  # the route's request body
    truth: Any  # what the user would say is right


@dataclass
class Loop:
    kind: str
    route: str
    train_rows: Callable[[int, int], list[dict]]  # (n, seed) -> the champion's training rows (JSONL), movie mix
    traffic: Callable[[int, int, bool], list[Item]]  # (n, seed, shifted) -> served items
    feedback: Callable[[dict, Any], list[tuple[int, Any]]]  # (answer body, truth) -> [(index, value)] to send
    slo: dict  # monitoring.slo.targets
    metric: str  # the recent-slice metric the challenger must beat the champion on, and which way is better
    better: str = "higher"
    base: str = "bert"
    extra: dict = field(default_factory=dict)
    suite: list[dict] | None = None  # evaluation.regression cases (chat): re-run by monitor on its schedule


def _sentence(rng: random.Random, mix: Mix, marked: list[str]) -> list[str]:
    body = [rng.choice(mix.neutral) for _ in range(rng.randint(3, 7))]
    for word in marked:
        body.insert(rng.randrange(len(body) + 1), word)
    return body


# --- classification: pos / neg, the label carried by the sentiment words (a quarter positive after the shift) --------

def _classification_rows(n: int, seed: int, shifted: bool = False) -> list[dict]:
    rng, mix = random.Random(seed), _mix(shifted)
    rows = []
    for _ in range(n):
        label = "pos" if rng.random() < (0.25 if shifted else 0.5) else "neg"
        marked = [rng.choice(mix.pos if label == "pos" else mix.neg) for _ in range(rng.randint(1, 2))]
        rows.append({"text": " ".join(_sentence(rng, mix, marked)), "label": label})
    return rows


def _classification_traffic(n, seed, shifted):
    return [Item({"input": r["text"]}, r["label"]) for r in _classification_rows(n, seed, shifted)]


# --- multi-label: praise (a positive word) and/or complaint (a negative word) --------------------------------------

def _multilabel_rows(n: int, seed: int, shifted: bool = False) -> list[dict]:
    rng, mix = random.Random(seed), _mix(shifted)
    rows = []
    for _ in range(n):
        labels = [lab for lab in ("praise", "complaint") if rng.random() < 0.5] or [rng.choice(["praise", "complaint"])]
        marked = [rng.choice(mix.pos if lab == "praise" else mix.neg) for lab in labels]
        rows.append({"text": " ".join(_sentence(rng, mix, marked)), "label": labels})
    return rows


def _multilabel_traffic(n, seed, shifted):
    return [Item({"input": r["text"]}, r["label"]) for r in _multilabel_rows(n, seed, shifted)]


# --- regression: 10 + 4 per positive word - 3 per negative word ----------------------------------------------------

def _regression_rows(n: int, seed: int, shifted: bool = False) -> list[dict]:
    rng, mix = random.Random(seed), _mix(shifted)
    rows = []
    for _ in range(n):
        pos, neg = rng.randint(0, 2), rng.randint(0, 2)
        marked = [rng.choice(mix.pos) for _ in range(pos)] + [rng.choice(mix.neg) for _ in range(neg)]
        rows.append({"text": " ".join(_sentence(rng, mix, marked)), "label": 10.0 + 4 * pos - 3 * neg})
    return rows


def _regression_traffic(n, seed, shifted):
    return [Item({"input": r["text"]}, r["label"]) for r in _regression_rows(n, seed, shifted)]


# --- token classification: GOOD (a positive word), BAD (a negative word) -------------------------------------------

def _tagged_rows(n: int, seed: int, shifted: bool = False) -> list[dict]:
    rng, mix = random.Random(seed), _mix(shifted)
    rows = []
    for _ in range(n):
        kinds = [rng.choice(["GOOD", "BAD"]) for _ in range(rng.randint(1, 2))]
        marked = [rng.choice(mix.pos if k == "GOOD" else mix.neg) for k in kinds]
        tokens = _sentence(rng, mix, marked)
        tags = ["B-GOOD" if t in mix.pos else "B-BAD" if t in mix.neg else "O" for t in tokens]
        rows.append({"tokens": tokens, "tags": tags})
    return rows


def _spans(tokens: list[str], tags: list[str]) -> list[dict]:
    spans, at = [], 0
    for token, tag in zip(tokens, tags, strict=True):
        if tag != "O":
            spans.append({"start": at, "end": at + len(token), "label": tag[2:]})
        at += len(token) + 1
    return spans


def _tagged_traffic(n, seed, shifted):
    return [Item({"input": " ".join(r["tokens"])}, _spans(r["tokens"], r["tags"]))
            for r in _tagged_rows(n, seed, shifted)]


# --- retrieval and reranking: a query word and its document's word are paired, never the same word ----------------

def _pairs(shifted: bool) -> list[tuple[str, str]]:
    mix = _mix(shifted)
    return list(zip(mix.pos, mix.neg, strict=True))


def _document(word: str) -> str:
    return f"the {word} and {word}" if word not in PRODUCT_NEG else f"my {word} and {word}"


def _query(rng: random.Random, word: str, shifted: bool) -> str:
    mix = _mix(shifted)
    return " ".join([word, rng.choice(mix.neutral), rng.choice(mix.neutral)])


def _embedding_rows(n: int, seed: int) -> list[dict]:
    rng, pairs, rows, seen = random.Random(seed), _pairs(False), [], set()
    while len(rows) < n:
        q, d = pairs[len(rows) % len(pairs)]
        query = _query(rng, q, False)
        if query not in seen:
            seen.add(query)
            rows.append({"query": query, "positive": _document(d)})
    return rows


def _embedding_traffic(n, seed, shifted):
    rng, pairs = random.Random(seed), _pairs(shifted)
    out = []
    for _ in range(n):
        q, d = rng.choice(pairs)
        out.append(Item({"input": _query(rng, q, shifted)}, _document(d)))
    return out


def _candidates(rng: random.Random, shifted: bool) -> tuple[str, list[str], list[int]]:
    pairs = _pairs(shifted)
    q, d = rng.choice(pairs)
    others = rng.sample([o for _, o in pairs if o != d], 3)
    docs = [_document(w) for w in [d, *others]]
    rng.shuffle(docs)
    return _query(rng, q, shifted), docs, [int(doc == _document(d)) for doc in docs]


def _rerank_rows(n_queries: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n_queries):
        query, docs, relevance = _candidates(rng, False)
        rows += [{"query": query, "document": doc, "relevance": rel} for doc, rel in zip(docs, relevance, strict=True)]
    return rows


def _rerank_traffic(n, seed, shifted):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        query, docs, relevance = _candidates(rng, shifted)
        out.append(Item({"query": query, "documents": docs}, relevance))
    return out


def _rerank_feedback(body: dict, truth: list[int]) -> list[tuple[int, Any]]:
    return [(r["index"], truth[r["index"]]) for r in body["results"]]


# --- chat: the question's topic word decides the answer ------------------------------------------------------------

CHAT_ANSWERS = {False: {"refund": "yes the refund is shipped", "weather": "the weather is sunny",
                        "password": "please reset the password", "order": "the order is shipped"},
                True: {"battery": "a new battery is on its way", "screen": "the screen is fixed today",
                       "cable": "send the cable back", "charger": "the charger is free"}}
CHAT_FILLER = {False: ["hello", "how", "are", "you", "what", "is", "the", "please", "help", "status"],
               True: ["my", "phone", "it", "is", "broken", "this", "after", "week", "one", "box"]}


def _chat_pairs(n: int, seed: int, shifted: bool) -> list[tuple[list[dict], str]]:
    rng, answers = random.Random(seed), CHAT_ANSWERS[shifted]
    out = []
    for i in range(n):
        topic = list(answers)[(i + rng.randrange(4)) % len(answers)]
        words = [rng.choice(CHAT_FILLER[shifted]) for _ in range(rng.randint(1, 4))]
        words.insert(rng.randrange(len(words) + 1), topic)
        out.append(([{"role": "user", "content": " ".join(words)}], answers[topic]))
    return out


def _chat_rows(n: int, seed: int) -> list[dict]:
    return [{"messages": [*m, {"role": "assistant", "content": a}]} for m, a in _chat_pairs(n, seed, False)]


def _chat_traffic(n, seed, shifted):
    return [Item({"messages": m, "max_tokens": 24}, a) for m, a in _chat_pairs(n, seed, shifted)]


def _thumbs(body: dict, truth: str) -> list[tuple[int, Any]]:
    """A user's thumb: up for the right answer, down with the right one written in otherwise."""
    said = " ".join(body["choices"][0]["message"]["content"].split())
    return [(0, {"thumbs": "up"} if said == truth else {"thumbs": "down", "correction": truth})]


LOOPS = {
    "classification": Loop("classification", "/v1/classify", lambda n, s: _classification_rows(n, s),
                           _classification_traffic, lambda body, truth: [(0, truth)], {"macro_f1": 0.8}, "macro_f1"),
    "multi-label": Loop("multi-label", "/v1/classify", lambda n, s: _multilabel_rows(n, s), _multilabel_traffic,
                        lambda body, truth: [(0, truth)], {"micro_f1": 0.8}, "micro_f1",
                        extra={"data": {"multi_label": True}}),
    "regression": Loop("regression", "/v1/score", lambda n, s: _regression_rows(n, s), _regression_traffic,
                       lambda body, truth: [(0, truth)], {"mae": 3.0}, "rmse", better="lower",
                       extra={"training": {"epochs": 16, "learning_rate": 2e-3}}),
    "token-classification": Loop("token-classification", "/v1/extract", lambda n, s: _tagged_rows(n, s),
                                 _tagged_traffic, lambda body, truth: [(0, truth)], {"entity_f1": 0.8}, "f1"),
    "embedding": Loop("embedding", "/v1/embeddings", _embedding_rows, _embedding_traffic,
                      lambda body, truth: [(0, {"document": truth})], {"mrr@10": 0.5}, "mrr@10"),
    "reranking": Loop("reranking", "/v1/rerank", _rerank_rows, _rerank_traffic, _rerank_feedback,
                      {"mrr@10": 0.8}, "mrr@10", extra={"training": {"epochs": 10, "learning_rate": 3e-3}}),
    "causal-lm": Loop("causal-lm", "/v1/chat/completions", _chat_rows, _chat_traffic, _thumbs,
                      {"thumbs_up_rate": 0.7}, "rouge_l", base="llama",
                      extra={"evaluation": {"samples": 1}, "chat": {"max_new_tokens": 24},
                             "training": {"epochs": 16, "learning_rate": 1e-2}},
                      suite=[{"name": "refund-answer", "prompt": "refund please", "require": ["refund"]},
                             {"name": "battery-answer", "prompt": "my battery is broken", "require": ["battery"]}]),
}
