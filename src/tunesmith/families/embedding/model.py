"""Sentence embeddings for retrieval, trained with sentence-transformers.

(query, positive[, hard negatives]) rows train with MultipleNegativesRankingLoss: every other positive in the batch
is a negative, so batches come from sentence-transformers' NO_DUPLICATES sampler (a text never appears twice in a
batch, so a row's own positive is never another row's negative). `cached-mnrl` (GradCache) decouples the number of
in-batch negatives (training.batch_size) from memory (embedding.mini_batch_size). Scored pairs (text1, text2, score)
train with CoSENT. MatryoshkaLoss optionally trains truncated dims too. The saved model is a plain
sentence-transformers dir (modules.json, safetensors) that `SentenceTransformer(path)` loads unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from tunesmith.config import Config, EmbeddingLoss, MethodConfig, MethodKind

ANCHOR, POSITIVE, SCORE = "anchor", "positive", "score"  # sentence-transformers' column order: inputs, then label


def is_sentence_transformers_dir(path: str) -> bool:
    return (Path(path) / "modules.json").is_file()


def load_model(path: str, cfg: Config, *, revision: str | None = None):
    """The base as a SentenceTransformer: its own modules when it is one, else transformer + pooling (+ normalize)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    remote = cfg.model.trust_remote_code
    if is_sentence_transformers_dir(path) or not Path(path).exists():  # a hub id: sentence-transformers decides
        model = SentenceTransformer(path, revision=revision, trust_remote_code=remote, device="cpu")
    else:
        transformer = Transformer(path, max_seq_length=cfg.model.max_length,
                                  model_kwargs={"trust_remote_code": remote},
                                  processor_kwargs={"trust_remote_code": remote})
        modules = [transformer, Pooling(transformer.get_embedding_dimension(), cfg.embedding.pooling)]
        modules += [Normalize()] if cfg.embedding.normalize else []
        model = SentenceTransformer(modules=modules, device="cpu")
    model.max_seq_length = cfg.model.max_length
    return model


def backbone(model) -> nn.Module:
    """The transformers model inside the first (Transformer) module."""
    return model[0].model


def apply_method(model, method: MethodConfig):
    """full: everything trains; freeze: embeddings + the first N layers frozen; lora: an adapter on the backbone."""
    from tunesmith.training.methods import MethodError, inject_lora

    kind = MethodKind(method.kind)
    hf = backbone(model)
    model.requires_grad_(True)
    if kind is MethodKind.FREEZE:
        layers = _layers(hf)
        if method.freeze.layers >= len(layers):  # no head trains beside an embedding model: keep a layer
            raise MethodError(f"method.freeze.layers: {method.freeze.layers} would freeze all {len(layers)} layers of "
                              f"the model; an embedding model has no head to train, so freeze at most {len(layers) - 1}")
        hf.get_input_embeddings().requires_grad_(False)
        getattr(hf, "embeddings", hf.get_input_embeddings()).requires_grad_(False)
        for layer in layers[: method.freeze.layers]:
            layer.requires_grad_(False)
    elif kind is MethodKind.LORA:
        inject_lora(hf, method, task_type="FEATURE_EXTRACTION")  # only the adapter trains
    elif kind is not MethodKind.FULL:
        raise MethodError(f"method.kind: {kind.value} does not apply to an embedding model; use full, lora or freeze")
    return model


def _layers(hf: nn.Module) -> nn.ModuleList:
    from tunesmith.training.methods import MethodError

    n = getattr(hf.config, "num_hidden_layers", None)
    found = [m for m in hf.modules() if isinstance(m, nn.ModuleList) and len(m) and (n is None or len(m) == n)]
    if not found:
        raise MethodError(f"cannot find the {n} encoder layers of {type(hf).__name__}; use method.kind: full or lora")
    return found[0]


def merge_adapter(model) -> None:
    """Fold a LoRA adapter into the backbone's weights and drop it, so the saved model needs no peft."""
    from tunesmith.training.methods import merge_injected_lora

    merge_injected_lora(backbone(model))


def save_adapter(model, out_dir) -> None:
    """The LoRA adapter alone (peft's adapter_config.json + adapter_model.safetensors), logged with the run."""
    from tunesmith.training.methods import save_injected_adapter

    save_injected_adapter(backbone(model), out_dir)


def negatives_per_row(frames: Sequence[pd.DataFrame]) -> int:
    """Hard negatives every row can give: MultipleNegativesRankingLoss needs the same number of columns per row."""
    counts = [len(n) for f in frames for n in f["negatives"]]
    return min(counts) if counts else 0


def to_dataset(frame: pd.DataFrame, *, scored: bool, negatives: int):
    """sentence-transformers columns: (anchor, positive, negative_1..k) or (sentence1, sentence2, score)."""
    from datasets import Dataset

    if scored:
        return Dataset.from_dict({"sentence1": frame["query"].tolist(), "sentence2": frame["positive"].tolist(),
                                  SCORE: frame["score"].astype(float).tolist()})
    cols = {ANCHOR: frame["query"].tolist(), POSITIVE: frame["positive"].tolist()}
    for i in range(negatives):
        cols[f"negative_{i + 1}"] = [n[i] for n in frame["negatives"]]
    return Dataset.from_dict(cols)


def is_scored(frame: pd.DataFrame) -> bool:
    return bool(len(frame)) and bool(frame["score"].notna().all())


def build_loss(model, cfg: Config, *, scored: bool):
    """The configured contrastive loss (auto: CoSENT for scored pairs, else MNRL), optionally Matryoshka-wrapped."""
    from sentence_transformers.sentence_transformer import losses

    e = cfg.embedding
    kind = e.loss if e.loss is not EmbeddingLoss.AUTO else (EmbeddingLoss.COSENT if scored else EmbeddingLoss.MNRL)
    if scored and kind is not EmbeddingLoss.COSENT:
        raise ValueError(f"embedding.loss: {kind.value} needs (query, positive) pairs; scored pairs train with cosent")
    if not scored and kind is EmbeddingLoss.COSENT:
        raise ValueError("embedding.loss: cosent needs a score per pair (data.score_column); use mnrl or cached-mnrl")
    if kind is EmbeddingLoss.COSENT:
        loss = losses.CoSENTLoss(model)
    elif kind is EmbeddingLoss.CACHED_MNRL:
        loss = losses.CachedMultipleNegativesRankingLoss(model, scale=e.scale, mini_batch_size=e.mini_batch_size)
    else:
        loss = losses.MultipleNegativesRankingLoss(model, scale=e.scale)
    if e.matryoshka_dims:
        dim = model.get_embedding_dimension()
        too_big = [d for d in e.matryoshka_dims if d > dim]
        if too_big:
            raise ValueError(f"embedding.matryoshka_dims: {too_big} exceed the model's {dim} dims")
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=sorted(set(e.matryoshka_dims), reverse=True))
    return loss


def encode(model, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text, in input order."""
    if not len(texts):
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    out = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


def train_model(cfg: Config, bundle, run_dir: Path, resolved, *, start_from=None, callbacks=()):
    """The training stage's hook: sentence-transformers trains this family (training.embedding)."""
    from tunesmith.families.embedding.train import train_embedding

    return train_embedding(cfg, bundle, Path(run_dir), resolved, start_from=start_from, callbacks=callbacks)
