"""Text encoders shared by the families and stages: tokenizer, length-sorted batches, logits, frozen embeddings.

    x = embed(base_path, texts)                       # mean-pooled frozen embeddings (probes, label checks)
    logits = predict_logits(model, tokenizer, texts)  # any sequence-classification head, in input order
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer


def load_tokenizer(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False):
    return AutoTokenizer.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code)


def inference_device() -> torch.device:
    """Where prediction runs: the GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_inference_device(model) -> torch.device:
    """Move `model` to `inference_device()` unless accelerate already placed it (device_map); its input device."""
    if getattr(model, "hf_device_map", None) is None:
        model.to(inference_device())
    return next(model.parameters()).device


def encode(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, list[list[int]]]:
    """Tokenize without padding: batches are padded dynamically by the collator."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)


def length_sorted_batches(tokenizer, texts: Sequence[str], max_length: int, batch_size: int):
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
    device = to_inference_device(model)
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for idx, enc in length_sorted_batches(tokenizer, list(texts), max_length, batch_size):
        logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        out[idx] = logits.float().cpu().numpy()
    return out


@torch.inference_mode()
def embed(model_path: str, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64,
          revision: str | None = None, trust_remote_code: bool = False) -> np.ndarray:
    """Mean-pooled embeddings of the frozen base model, for the linear-probe baseline."""
    tokenizer = load_tokenizer(model_path, revision=revision, trust_remote_code=trust_remote_code)
    model = AutoModel.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code).eval()
    device = to_inference_device(model)
    out = None
    for idx, enc in length_sorted_batches(tokenizer, list(texts), max_length, batch_size):
        enc = {k: v.to(device) for k, v in enc.items()}
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
        out[idx] = pooled
    return out if out is not None else np.zeros((0, model.config.hidden_size), dtype=np.float32)


def base_embedder(cfg):
    """texts -> mean-pooled frozen embeddings of `cfg.model.base` (the probes', label checks' and review's features)."""
    from tunesmith.hub import resolve_model

    def embed_texts(texts: list[str]) -> np.ndarray:
        resolved = resolve_model(cfg.model.base, cfg.model.revision)
        return embed(resolved.path, texts, max_length=cfg.model.max_length, batch_size=cfg.training.eval_batch_size,
                     revision=resolved.revision, trust_remote_code=cfg.model.trust_remote_code)

    return embed_texts


def split_embeddings(cfg, bundle) -> list[np.ndarray]:
    """Frozen base embeddings of the train, eval and test splits (one pass): what the probe baselines fit on."""
    splits = [bundle.train, bundle.eval, bundle.test]
    x = base_embedder(cfg)([t for frame in splits for t in frame["text"].astype(str).tolist()])
    bounds = np.cumsum([0] + [len(frame) for frame in splits])
    return [x[bounds[i]:bounds[i + 1]] for i in range(3)]


# --- sentence-transformers models (embedding's own, reranking's bi-encoder baseline) ------------------------------


def is_sentence_transformers_dir(path: str) -> bool:
    return (Path(path) / "modules.json").is_file()


def sentence_model(path: str, *, max_length: int, pooling: str = "mean", normalize: bool = True,
                   revision: str | None = None, trust_remote_code: bool = False):
    """`path` as a SentenceTransformer: its own modules when it is one (or a hub id), else transformer + pooling
    (+ normalize)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    if is_sentence_transformers_dir(path) or not Path(path).exists():  # a hub id: sentence-transformers decides
        model = SentenceTransformer(path, revision=revision, trust_remote_code=trust_remote_code, device="cpu")
    else:
        transformer = Transformer(path, max_seq_length=max_length, model_kwargs={"trust_remote_code": trust_remote_code},
                                  processor_kwargs={"trust_remote_code": trust_remote_code})
        modules = [transformer, Pooling(transformer.get_embedding_dimension(), pooling)]
        modules += [Normalize()] if normalize else []
        model = SentenceTransformer(modules=modules, device="cpu")
    model.max_seq_length = max_length
    return model


def encode_sentences(model, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text, in input order."""
    if not len(texts):
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    out = model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                       show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)

