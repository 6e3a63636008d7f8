"""Serving a text regressor: /v1/score answers the head's value per text, in the target's unit."""

from __future__ import annotations

from pathlib import Path

from tunesmith.serving.handlers import encoder_outputs
from tunesmith.serving.models import Served, architecture, load_transformer


def recognizes(model_dir: Path, config: dict) -> bool:
    """A sequence-classification head with one output, or problem_type regression."""
    one = config.get("problem_type") == "regression" or len(config.get("id2label") or {}) == 1
    return architecture(config).endswith("ForSequenceClassification") and one


def load_served(model_dir: Path, served: Served) -> None:
    from transformers import AutoModelForSequenceClassification

    load_transformer(served, AutoModelForSequenceClassification)
    served.output, served.onnx_output = "value", "logits"


def describe_model(model_dir: Path) -> dict:
    return {"targets": ["target"]}


def predict(served: Served, texts: list[str]) -> list[float]:
    """The regression head's output per text."""
    return encoder_outputs(served, texts, lambda enc: served.model(**enc).logits.float()[:, 0].tolist())


