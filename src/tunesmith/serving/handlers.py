"""Batch inference per task: plain functions from a list of inputs to a list of outputs, in input order.

    classify(served, ["great film", "dull"])  # -> [{"label": "pos", "score": 0.93, "scores": {...}}, ...]

The batcher calls these with whatever arrived within `max_wait_ms`; each returns one output per input.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from tunesmith.serving.models import Served


@dataclass(frozen=True)
class GenParams:
    """Generation settings of one request; requests in a batch are generated together when these match."""

    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"


def _encode(served: Served, texts: list[str]):
    return served.tokenizer(texts, padding=True, truncation=True, max_length=served.max_length, return_tensors="pt")


PADDED_TOKENS_PER_PASS = 512  # length-sorted sub-batches up to this many padded tokens: less padding, warm caches


def _encoder_outputs(served: Served, texts: list[str], run) -> list:
    """`run(enc)` over length-sorted sub-batches (padding is wasted compute), results back in input order."""
    lengths = [len(ids) for ids in served.tokenizer(texts, truncation=True, max_length=served.max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    out: list = [None] * len(texts)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end - start + 1) * lengths[order[end]] <= PADDED_TOKENS_PER_PASS:
            end += 1
        idx = order[start:end]
        with torch.inference_mode(), served.autocast_ctx():
            rows = run(_encode(served, [texts[i] for i in idx]))
        for i, row in zip(idx, rows, strict=True):
            out[i] = row
        start = end
    return out


def classify(served: Served, texts: list[str]) -> list[dict]:
    """Label, its calibrated probability, and every label's probability, per text."""
    if served.thresholds is not None:
        return classify_multilabel(served, texts)
    probs = _encoder_outputs(served, texts, lambda enc: torch.softmax(
        served.model(**enc).logits.float() / served.temperature, dim=-1).tolist())
    out = []
    for row in probs:
        best = max(range(len(row)), key=row.__getitem__)
        scores = {served.labels.get(i, str(i)): round(p, 6) for i, p in enumerate(row)}
        out.append({"label": served.labels.get(best, str(best)), "score": row[best], "scores": scores})
    return out


def classify_multilabel(served: Served, texts: list[str]) -> list[dict]:
    """Multi-label: every label whose sigmoid score reaches its threshold (most likely first), the top label and
    its score, and every label's score."""
    probs = _encoder_outputs(served, texts, lambda enc: torch.sigmoid(served.model(**enc).logits.float()).tolist())
    out = []
    for row in probs:
        names = [served.labels.get(i, str(i)) for i in range(len(row))]
        best = max(range(len(row)), key=row.__getitem__)
        above = sorted((i for i, p in enumerate(row) if p >= served.thresholds.get(i, 0.5)), key=lambda i: -row[i])
        out.append({"label": names[best], "score": row[best], "labels": [names[i] for i in above],
                    "scores": {n: round(p, 6) for n, p in zip(names, row, strict=True)}})
    return out


RERANK_PAIRS_PER_PASS = 32


def rerank(served: Served, pairs: list[tuple[str, str]]) -> list[float]:
    """Relevance (sigmoid of the cross-encoder's logit, as CrossEncoder.predict gives it) per (query, document)."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))  # less padding per pass
    out: list[float] = [0.0] * len(pairs)
    for start in range(0, len(order), RERANK_PAIRS_PER_PASS):
        idx = order[start:start + RERANK_PAIRS_PER_PASS]
        enc = served.tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], padding=True, truncation=True,
                               max_length=served.max_length, return_tensors="pt")
        with torch.inference_mode(), served.autocast_ctx():
            scores = torch.sigmoid(served.model(**enc).logits.float()[:, 0]).tolist()
        for i, s in zip(idx, scores, strict=True):
            out[i] = s
    return out


def score(served: Served, texts: list[str]) -> list[float]:
    """The regression head's output per text."""
    return _encoder_outputs(served, texts, lambda enc: served.model(**enc).logits.float()[:, 0].tolist())


def embed(served: Served, texts: list[str]) -> list[list[float]]:
    """Mean-pooled last hidden states (sentence-transformers' default), L2-normalised when the dir says so."""

    def pool(enc):
        hidden = served.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return (torch.nn.functional.normalize(pooled, dim=-1) if served.normalize else pooled).tolist()

    return _encoder_outputs(served, texts, pool)


def extract(served: Served, texts: list[str]) -> list[list[dict]]:
    """Entities per text as character spans {start, end, label, score, text}, the whole batch in one pass (words
    split and tags read as in training: tasks.token_classification.extract)."""
    from tunesmith.families.token_classification.model import extract as extract_entities

    with served.autocast_ctx():
        return extract_entities(served.model, served.tokenizer, texts, max_length=served.max_length,
                                batch_size=max(len(texts), 1))


def chat_prompt(served: Served, messages: list[dict]) -> str:
    """The model's own chat template applied to OpenAI-style messages, ending with the assistant turn."""
    if not getattr(served.tokenizer, "chat_template", None):
        raise ValueError(f"model {served.tag} has no chat template; use /v1/completions with a plain prompt")
    return served.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _gen_kwargs(served: Served, params: GenParams) -> dict:
    kwargs = {"max_new_tokens": params.max_tokens, "pad_token_id": served.tokenizer.pad_token_id}
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(do_sample=False)
    return kwargs


def generate(served: Served, items: list[tuple[str, GenParams]]) -> list[Generation]:
    """Complete each prompt; prompts with the same settings are generated as one left-padded batch."""
    out: list[Generation | None] = [None] * len(items)
    groups: dict[GenParams, list[int]] = {}
    for i, (_, params) in enumerate(items):
        groups.setdefault(params, []).append(i)
    for params, idx in groups.items():
        prompts = [items[i][0] for i in idx]
        enc = served.tokenizer(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
        with served.lock, torch.inference_mode(), served.autocast_ctx():
            ids = served.model.generate(**enc, **_gen_kwargs(served, params))
        width = enc["input_ids"].shape[1]
        for row, i in zip(ids, idx, strict=True):
            new = row[width:]
            new = new[new != served.tokenizer.pad_token_id] if served.tokenizer.pad_token_id is not None else new
            text = served.tokenizer.decode(new, skip_special_tokens=True)
            text, stopped = _apply_stop(text, params.stop)
            hit_eos = len(new) < params.max_tokens
            out[i] = Generation(text, int(enc["attention_mask"][idx.index(i)].sum()), len(new),
                                "stop" if stopped or hit_eos else "length")
    return out  # type: ignore[return-value]


def stream(served: Served, prompt: str, params: GenParams) -> Iterator[str]:
    """Text pieces as the model produces them (transformers' TextIteratorStreamer, generate in a thread)."""
    from transformers import TextIteratorStreamer

    enc = served.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    streamer = TextIteratorStreamer(served.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
    errors: list[BaseException] = []

    def work():
        try:
            with served.lock, torch.inference_mode(), served.autocast_ctx():
                served.model.generate(**enc, streamer=streamer, **_gen_kwargs(served, params))
        except BaseException as exc:  # surfaced to the reader below
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    produced = ""
    for piece in streamer:
        if not piece:
            continue
        produced += piece
        cut, stopped = _apply_stop(produced, params.stop)
        if stopped:
            tail = cut[len(produced) - len(piece):]
            if tail:
                yield tail
            break
        yield piece
    thread.join()
    if errors:
        raise errors[0]


def _apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)
