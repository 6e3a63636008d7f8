"""Serving a multi-label classifier: /v1/classify answers every label whose score reaches its tuned threshold."""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.serving.handlers import encoder_outputs
from tunesmith.serving.models import Served, architecture, load_transformer, thresholds_of

PROBLEM_TYPE = "multi_label_classification"  # transformers' name for one sigmoid per label


def recognizes(model_dir: Path, config: dict) -> bool:
    return architecture(config).endswith("ForSequenceClassification") and config.get("problem_type") == PROBLEM_TYPE


def load_served(model_dir: Path, served: Served) -> None:
    from transformers import AutoModelForSequenceClassification

    load_transformer(served, AutoModelForSequenceClassification)
    served.thresholds = thresholds_of(model_dir, served.labels)
    served.output, served.onnx_output = "sigmoid", "logits"


def describe_model(model_dir: Path) -> dict:
    """The labels in output order; thresholds.json (tuned on eval) is added when the run ships it."""
    import json

    id2label = json.loads((Path(model_dir) / "config.json").read_text()).get("id2label") or {}
    return {"labels": [id2label[k] for k in sorted(id2label, key=int)]}


def predict(served: Served, texts: list[str]) -> list[dict]:
    """Multi-label: every label whose sigmoid score reaches its threshold (most likely first), the top label and
    its score, and every label's score."""
    probs = encoder_outputs(served, texts, lambda enc: torch.sigmoid(served.model(**enc).logits.float()).tolist())
    out = []
    for row in probs:
        names = [served.labels.get(i, str(i)) for i in range(len(row))]
        best = max(range(len(row)), key=row.__getitem__)
        above = sorted((i for i, p in enumerate(row) if p >= served.thresholds.get(i, 0.5)), key=lambda i: -row[i])
        out.append({"label": names[best], "score": row[best], "labels": [names[i] for i in above],
                    "scores": {n: round(p, 6) for n, p in zip(names, row, strict=True)}})
    return out


