"""The drift reference of a classifier, computed at training time and shipped as a run artifact.

    ref = build_reference(cfg, bundle, model_dir)   # pipeline.run writes <run>/drift_reference.json
    ref = load_reference(store, "sentiment", 3)    # what `tunesmith monitor` compares a window with

It holds what the drift tests need and nothing that must be recomputed from the training data later: text
lengths and token counts of the training split, predicted labels / confidences / ECE of the tuned model on the
held-out splits, and mean-pooled embeddings of a seeded sample of held-out texts.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

REFERENCE_FILE = "drift_reference.json"
REFERENCE_VERSION = 1
_TOKEN_RE = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens: model-independent, so references of two versions compare."""
    return _TOKEN_RE.findall(str(text).lower())


def text_length(text: str) -> int:
    return len(tokens(text))


def temperature_of(model_dir: str | Path) -> float:
    path = Path(model_dir) / "calibration.json"
    if not path.is_file():
        return 1.0
    try:
        value = float(json.loads(path.read_text()).get("temperature", 1.0))
    except (ValueError, TypeError, AttributeError):
        return 1.0
    return value if value > 0 else 1.0


def predict_proba(model, tokenizer, texts: Sequence[str], *, max_length: int, temperature: float = 1.0,
                  batch_size: int = 64) -> np.ndarray:
    """Calibrated class probabilities (the server's temperature applied), columns in model label order."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        with torch.inference_mode():
            logits = model(**enc).logits.float() / temperature
        out.append(torch.softmax(logits, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.num_labels))


def embed(model, tokenizer, texts: Sequence[str], *, max_length: int, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled last hidden states of the classifier's encoder: the space the classifier decides in."""
    encoder = getattr(model, model.base_model_prefix, None) or model.base_model
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.append(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def ece(proba: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    from tunesmith.evaluation.calibration import expected_calibration_error

    return float(expected_calibration_error(proba, y, bins))


def build_reference(cfg, bundle, model_dir: str | Path) -> dict:
    """The reference of a classification run: training-split inputs, held-out predictions, embedding sample."""
    import pandas as pd

    from tunesmith.evaluation.scoring import load_classifier, model_labels

    model, tokenizer = load_classifier(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    labels = model_labels(model)
    train_texts = bundle.train["text"].astype(str).tolist()
    held = pd.concat([bundle.eval, bundle.test], ignore_index=True)
    held_texts = held["text"].astype(str).tolist()
    proba = predict_proba(model, tokenizer, held_texts, max_length=cfg.model.max_length,
                          temperature=temperature_of(model_dir))
    pred = proba.argmax(1)
    y = np.array([labels.index(str(v)) if str(v) in labels else -1 for v in held["label"]])
    known = y >= 0
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.monitoring.drift.reference_rows, len(held_texts))
    sample = sorted(rng.choice(len(held_texts), size=n, replace=False).tolist()) if n else []
    vectors = embed(model, tokenizer, [held_texts[i] for i in sample], max_length=cfg.model.max_length)
    token_counts = Counter(t for text in train_texts for t in tokens(text))
    return {
        "version": REFERENCE_VERSION,
        "model": cfg.name,
        "labels": labels,
        "rows": {"train": len(train_texts), "held_out": len(held_texts)},
        "lengths": [text_length(t) for t in train_texts],
        "token_counts": dict(token_counts.most_common(5000)),
        "token_total": int(sum(token_counts.values())),
        "predicted_counts": {labels[i]: int((pred == i).sum()) for i in range(len(labels))},
        "confidences": [round(float(c), 5) for c in proba.max(1)],
        "ece": ece(proba[known], y[known], cfg.evaluation.calibration.bins) if known.any() else None,
        "embeddings": np.round(vectors, 5).tolist(),
        "max_length": cfg.model.max_length,
    }


def write_reference(cfg, bundle, model_dir: str | Path, run_dir: str | Path) -> Path | None:
    """<run>/drift_reference.json for a run of a family with drift tests; None for the others (not yet covered)."""
    from tunesmith.families import get
    from tunesmith.io import atomic_write_json

    hooks = get(cfg.task).drift
    if hooks is None:
        return None
    return atomic_write_json(Path(run_dir) / REFERENCE_FILE, hooks.reference(cfg, bundle, model_dir), indent=None)


def load_reference(store, name: str, version: int) -> dict | None:
    """The reference logged with `name` version N's run, or None when that run has none (trained before it existed)."""
    from mlflow.exceptions import MlflowException

    client = store.client
    mv = client.get_model_version(name, str(version))
    if not mv.run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(mv.run_id, REFERENCE_FILE, tmp)
        except (MlflowException, OSError):
            return None
        return json.loads(Path(path).read_text())
