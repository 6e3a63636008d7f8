"""What the distillation report needs from classification: a model's test-split quality, the paired comparison of
two models on it, and the model loaded for the latency measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tunesmith.config import Config
from tunesmith.evaluation.metrics import label_ids
from tunesmith.evaluation.scoring import (
    frame_logits,
    label_order,
    load_classifier,
    model_metrics,
    paired_deltas,
)


def scores(cfg: Config, bundle, path: Path) -> dict:
    model, tokenizer = load_classifier(path, trust_remote_code=cfg.model.trust_remote_code)
    labels = list(bundle.labels)
    logits = frame_logits(model, tokenizer, bundle.test, cfg, label_order(model, labels) or list(range(len(labels))))
    proba = torch.softmax(torch.from_numpy(logits), -1).numpy()
    y = label_ids(bundle.test["label"].tolist(), labels)
    quality = {k: float(v) for k, v in model_metrics(y, proba, labels, cfg).items() if np.isscalar(v)}
    return {"quality": quality, "y": y, "proba": proba}


def delta(cfg: Config, a: dict, b: dict, metric: str) -> dict:
    """a - b on `metric`, paired bootstrap over test rows (the evaluation stage's resampler)."""
    return {k: float(v) for k, v in paired_deltas(a["y"], a["proba"], b["proba"], cfg)[metric].items()}


def load(path: Path, cfg: Config) -> tuple:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), use_safetensors=True, trust_remote_code=cfg.model.trust_remote_code).eval()
    return model, AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.model.trust_remote_code)
