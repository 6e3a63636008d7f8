"""Text classification (single label): a sequence-classification head trained with cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel


def load_tokenizer(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False):
    return AutoTokenizer.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code)


def build_model(
    model_path: str,
    labels: Sequence[str],
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
) -> PreTrainedModel:
    """A base model with a fresh classification head sized for `labels` (id2label kept in its config)."""
    return AutoModelForSequenceClassification.from_pretrained(
        model_path,
        revision=revision,
        num_labels=len(labels),
        problem_type="single_label_classification",  # never regression, even for a 1-label head
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        trust_remote_code=trust_remote_code,
        ignore_mismatched_sizes=True,  # a fine-tuned classifier re-headed for a new label set
    )


def inference_device() -> torch.device:
    """Where prediction runs: the GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to_inference_device(model) -> torch.device:
    """Move `model` to `inference_device()` unless accelerate already placed it (device_map); its input device."""
    if getattr(model, "hf_device_map", None) is None:
        model.to(inference_device())
    return next(model.parameters()).device


def encode(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, list[list[int]]]:
    """Tokenize without padding: batches are padded dynamically by the collator."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)


def _batches(tokenizer, texts: Sequence[str], max_length: int, batch_size: int):
    # Sort by length so each batch pads to its own longest text, then restore the input order.
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        yield idx, enc


@torch.inference_mode()
def predict_logits(model, tokenizer, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """Logits for each text, shape (n, num_labels), in input order."""
    model.eval()
    device = _to_inference_device(model)
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for idx, enc in _batches(tokenizer, list(texts), max_length, batch_size):
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        out[idx] = logits.float().cpu().numpy()
    return out


@torch.inference_mode()
def embed(model_path: str, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64,
          revision: str | None = None, trust_remote_code: bool = False) -> np.ndarray:
    """Mean-pooled embeddings of the frozen base model, for the linear-probe baseline."""
    tokenizer = load_tokenizer(model_path, revision=revision, trust_remote_code=trust_remote_code)
    model = AutoModel.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code).eval()
    device = _to_inference_device(model)
    out = None
    for idx, enc in _batches(tokenizer, list(texts), max_length, batch_size):
        enc = {k: v.to(device) for k, v in enc.items()}
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
        out[idx] = pooled
    return out if out is not None else np.zeros((0, model.config.hidden_size), dtype=np.float32)
