"""What the distillation report needs from regression: a model's test-split errors and correlations, the paired
comparison of two models on them, and the model loaded for the latency measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.config import Config
from tunesmith.families.regression.evaluate import deltas, predict_values
from tunesmith.families.regression.model import regression_scores


def scores(cfg: Config, bundle, path: Path) -> dict:
    y = bundle.test["target"].astype(float).to_numpy()
    pred = predict_values(path, cfg, "model_dir", bundle.test["text"].astype(str).tolist())
    return {"quality": regression_scores(pred, y), "pred": pred, "y": y}


def delta(cfg: Config, a: dict, b: dict, metric: str) -> dict:
    """a - b on `metric` (rmse, mae, spearman, ...), paired bootstrap over test rows; for errors negative is better."""
    return {k: float(v) for k, v in deltas(np.asarray(a["pred"]), np.asarray(b["pred"]), a["y"], cfg)[metric].items()}


def load(path: Path, cfg: Config) -> tuple:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), use_safetensors=True, trust_remote_code=cfg.model.trust_remote_code).eval()
    return model, AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.model.trust_remote_code)
