"""Batch inference helpers the families' `predict` functions share: padded-token-bounded, length-sorted passes.

    probs = encoder_outputs(served, texts, lambda enc: torch.softmax(served.model(**enc).logits, -1).tolist())

The batcher calls a family's `predict` with whatever arrived within `max_wait_ms`; it returns one output per input.
"""

from __future__ import annotations

import torch

from tunesmith.serving.models import Served


def _encode(served: Served, texts: list[str]):
    return served.tokenizer(texts, padding=True, truncation=True, max_length=served.max_length, return_tensors="pt")


PADDED_TOKENS_PER_PASS = 512  # length-sorted sub-batches up to this many padded tokens: less padding, warm caches


def encoder_outputs(served: Served, texts: list[str], run) -> list:
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


