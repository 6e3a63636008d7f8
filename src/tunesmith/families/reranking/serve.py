"""Serving a cross-encoder: /v1/rerank scores each (query, document) pair, most relevant first."""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.serving.models import Served, architecture, is_cross_encoder, load_transformer


def recognizes(model_dir: Path, config: dict) -> bool:
    """A sequence-classification head that sentence-transformers saved as a CrossEncoder."""
    return architecture(config).endswith("ForSequenceClassification") and is_cross_encoder(Path(model_dir))


def load_served(model_dir: Path, served: Served) -> None:
    from transformers import AutoModelForSequenceClassification

    load_transformer(served, AutoModelForSequenceClassification)
    served.output = "sigmoid"


def describe_model(model_dir: Path) -> dict:
    return {"scores": "relevance in [0, 1] (sigmoid of the logit)"}


RERANK_PAIRS_PER_PASS = 32


def predict(served: Served, pairs: list[tuple[str, str]]) -> list[float]:
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


