"""Rerankers: a cross-encoder scores (query, document) pairs jointly; candidates are ranked per query by its score.

Trained with sentence-transformers' CrossEncoderTrainer and BinaryCrossEntropyLoss: binary relevance is the target
as is; graded relevance (0, 1, 2, ...) becomes a soft target relevance / max relevance of the train split, so a
highly relevant document scores above a partly relevant one. The saved model is a plain sentence-transformers
CrossEncoder dir (modules.json, safetensors, a 1-output ...ForSequenceClassification) that `CrossEncoder(path)`
loads unchanged; its `predict` applies a sigmoid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tunesmith.config import Config, MethodConfig, MethodKind

QUERY, DOCUMENT, LABEL = "query", "document", "label"  # CrossEncoderTrainer columns: the pair, then the target


def load_model(path: str, cfg: Config, *, revision: str | None = None):
    """The base as a 1-output CrossEncoder; a sentence-transformers bi-encoder dir is converted (new head)."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(path, num_labels=1, max_length=cfg.model.max_length, revision=revision, device="cpu",
                        trust_remote_code=cfg.model.trust_remote_code)


def backbone(model):
    """The transformers ...ForSequenceClassification inside the CrossEncoder."""
    return model[0].model


def apply_method(model, method: MethodConfig):
    """full: everything trains; freeze: embeddings + the first N encoder layers frozen; lora: an adapter on the encoder.
    The classifier head (new for a bi-encoder or plain base) always trains in full."""
    from tunesmith.training.methods import MethodError, freeze_lower, head_module_names, inject_lora

    kind = MethodKind(method.kind)
    model.requires_grad_(True)
    hf = backbone(model)
    if kind is MethodKind.FREEZE:  # the classifier head keeps training
        freeze_lower(hf, method.freeze.layers)
    elif kind is MethodKind.LORA:
        inject_lora(hf, method, task_type="SEQ_CLS", train_heads=head_module_names(hf))
    elif kind is not MethodKind.FULL:
        raise MethodError(f"method.kind: {kind.value} is not supported for reranking; use full, freeze or lora")
    return model


def merge_adapter(model) -> None:
    """Fold the LoRA adapter into the encoder and keep the trained head: the saved CrossEncoder needs no peft."""
    from tunesmith.training.methods import merge_injected_lora

    merge_injected_lora(backbone(model))


def save_adapter(model, out_dir) -> None:
    """The adapter plus the trained head (peft's adapter_config.json + adapter_model.safetensors)."""
    from tunesmith.training.methods import save_injected_adapter

    save_injected_adapter(backbone(model), out_dir)


def max_relevance(frame: pd.DataFrame) -> float:
    top = float(frame["relevance"].max()) if len(frame) else 1.0
    return top if top > 0 else 1.0


def to_dataset(frame: pd.DataFrame, scale: float):
    """(query, document, label) with label = relevance / scale in [0, 1] (binary relevance stays 0/1)."""
    from datasets import Dataset

    return Dataset.from_dict({QUERY: frame["query"].astype(str).tolist(), DOCUMENT: frame["document"].astype(str).tolist(),
                              LABEL: np.clip(frame["relevance"].astype(float).to_numpy() / scale, 0, 1).tolist()})


def build_loss(model, train: pd.DataFrame):
    """BinaryCrossEntropyLoss with pos_weight = negatives / positives (capped at 100): candidate lists are mostly
    irrelevant documents, and an unweighted loss learns to say "no" to everything."""
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    rel = train["relevance"].astype(float).to_numpy()
    pos = float((rel > 0).sum())
    weight = min(max((len(rel) - pos) / pos, 1.0), 100.0) if pos else 1.0
    return BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(weight))


def predict(model, queries: Sequence[str], documents: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """One relevance score (sigmoid of the logit) per (query, document) pair, in input order."""
    if not len(queries):
        return np.zeros(0, dtype=np.float32)
    out = model.predict(list(zip(queries, documents, strict=True)), batch_size=batch_size, convert_to_numpy=True,
                        show_progress_bar=False)
    return np.asarray(out, dtype=np.float32).reshape(-1)
