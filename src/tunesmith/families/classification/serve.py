"""Serving a single-label classifier: /v1/classify answers each text's label with its calibrated probability."""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.serving.handlers import encoder_outputs
from tunesmith.serving.models import Served, architecture, load_transformer, temperature_of


def recognizes(model_dir: Path, config: dict) -> bool:
    """A sequence-classification head (after the reranker, multi-label and regression rules have passed on it)."""
    return architecture(config).endswith("ForSequenceClassification")


def load_served(model_dir: Path, served: Served) -> None:
    from transformers import AutoModelForSequenceClassification

    load_transformer(served, AutoModelForSequenceClassification)
    served.temperature = temperature_of(model_dir)
    served.onnx_output = "logits"


def describe_model(model_dir: Path) -> dict:
    """The labels in class-id order (from the saved head)."""
    return {"labels": labels_of(model_dir)}


def labels_of(model_dir: Path) -> list[str]:
    import json

    id2label = json.loads((Path(model_dir) / "config.json").read_text()).get("id2label") or {}
    return [id2label[k] for k in sorted(id2label, key=int)]


def predict(served: Served, texts: list[str]) -> list[dict]:
    """Label, its calibrated probability, and every label's probability, per text."""
    probs = encoder_outputs(served, texts, lambda enc: torch.softmax(
        served.model(**enc).logits.float() / served.temperature, dim=-1).tolist())
    out = []
    for row in probs:
        best = max(range(len(row)), key=row.__getitem__)
        scores = {served.labels.get(i, str(i)): round(p, 6) for i, p in enumerate(row)}
        out.append({"label": served.labels.get(best, str(best)), "score": row[best], "scores": scores})
    return out


