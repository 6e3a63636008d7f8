"""Serving an embedding model: /v1/embeddings (OpenAI's shape) answers one vector per text."""

from __future__ import annotations

from pathlib import Path

import torch

from tunesmith.serving.handlers import encoder_outputs
from tunesmith.serving.models import Served, architecture, has_normalize, load_transformer, transformer_dir


def recognizes(model_dir: Path, config: dict) -> bool:
    """A sentence-transformers dir, or a plain encoder (the last rule: no task head at all)."""
    arch = architecture(config)
    return (Path(model_dir) / "modules.json").exists() or arch.endswith("Model") or not arch


def load_served(model_dir: Path, served: Served) -> None:
    from transformers import AutoModel

    load_transformer(served, AutoModel, transformer_dir(model_dir))
    served.normalize = has_normalize(model_dir)
    served.output, served.onnx_output = "embedding", "last_hidden_state"


def describe_model(model_dir: Path) -> dict:
    return {"normalize": has_normalize(Path(model_dir))}


def predict(served: Served, texts: list[str]) -> list[list[float]]:
    """Mean-pooled last hidden states (sentence-transformers' default), L2-normalised when the dir says so."""

    def pool(enc):
        hidden = served.model(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return (torch.nn.functional.normalize(pooled, dim=-1) if served.normalize else pooled).tolist()

    return encoder_outputs(served, texts, pool)


