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

import pandas as pd
from torch import nn

from tunesmith.config import Config, EmbeddingLoss, MethodConfig, MethodKind
from tunesmith.encoders import encode_sentences as encode  # noqa: F401 (the family's encoder)
from tunesmith.encoders import is_sentence_transformers_dir, sentence_model  # noqa: F401

ANCHOR, POSITIVE, SCORE = "anchor", "positive", "score"  # sentence-transformers' column order: inputs, then label


def load_model(path: str, cfg: Config, *, revision: str | None = None):
    """The base as a SentenceTransformer: its own modules when it is one, else transformer + the configured pooling
    (embedding.pooling, embedding.normalize)."""
    return sentence_model(path, max_length=cfg.model.max_length, pooling=cfg.embedding.pooling,
                          normalize=cfg.embedding.normalize, revision=revision,
                          trust_remote_code=cfg.model.trust_remote_code)


def backbone(model) -> nn.Module:
    """The transformers model inside the first (Transformer) module."""
    return model[0].model


def apply_method(model, method: MethodConfig):
    """full: everything trains; freeze: embeddings + the first N layers frozen; lora: an adapter on the backbone."""
    from tunesmith.training.methods import MethodError, freeze_lower, inject_lora

    kind = MethodKind(method.kind)
    hf = backbone(model)
    model.requires_grad_(True)
    if kind is MethodKind.FREEZE:  # no head trains beside an embedding model: a block must keep training
        freeze_lower(hf, method.freeze.layers, keep_one=True)
    elif kind is MethodKind.LORA:
        inject_lora(hf, method, task_type="FEATURE_EXTRACTION")  # only the adapter trains
    elif kind is not MethodKind.FULL:
        raise MethodError(f"method.kind: {kind.value} does not apply to an embedding model; use full, lora or freeze")
    return model


def merge_adapter(model) -> None:
    """Fold a LoRA adapter into the backbone's weights and drop it, so the saved model needs no peft."""
    from tunesmith.training.methods import merge_injected_lora

    merge_injected_lora(backbone(model))


def save_adapter(model, out_dir) -> None:
    """The LoRA adapter alone (peft's adapter_config.json + adapter_model.safetensors), logged with the run."""
    from tunesmith.training.methods import save_injected_adapter

    save_injected_adapter(backbone(model), out_dir)


def negatives_per_row(frames: Sequence[pd.DataFrame]) -> int:
    """The most hard negatives a training row carries: every row gets that many columns (`to_dataset` fills a
    row's missing ones with other rows' positives, which MultipleNegativesRankingLoss needs: one shape per row)."""
    counts = [len(n) for f in frames for n in f["negatives"]]
    return max(counts) if counts else 0


def to_dataset(frame: pd.DataFrame, *, scored: bool, negatives: int):
    """sentence-transformers columns: (anchor, positive, negative_1..k) or (sentence1, sentence2, score)."""
    from datasets import Dataset

    if scored:
        return Dataset.from_dict({"sentence1": frame["query"].tolist(), "sentence2": frame["positive"].tolist(),
                                  SCORE: frame["score"].astype(float).tolist()})
    cols = {ANCHOR: frame["query"].tolist(), POSITIVE: frame["positive"].tolist()}
    filled = fill_negatives(frame, negatives)
    for i in range(negatives):
        cols[f"negative_{i + 1}"] = [n[i] for n in filled]
    return Dataset.from_dict(cols)


def fill_negatives(frame: pd.DataFrame, k: int, seed: int = 0) -> list[list[str]]:
    """Each row's first `k` hard negatives, topped up with other rows' positives (seeded; never the row's own query,
    positive or negatives): a random negative where a row has no hard one, as in-batch negatives are."""
    import random

    rng = random.Random(seed)
    pool = list(dict.fromkeys([*frame["positive"].astype(str), *(str(n) for negs in frame["negatives"] for n in negs)]))
    out = []
    for query, positive, negs in zip(frame["query"], frame["positive"], frame["negatives"], strict=True):
        row = [str(n) for n in list(negs)[:k]]
        taken = {str(query), str(positive), *row}
        for _ in range(20 * (k - len(row))):  # random draws: no scan of the corpus per row
            if len(row) == k:
                break
            pick = pool[rng.randrange(len(pool))]
            if pick not in taken:
                row.append(pick)
                taken.add(pick)
        if len(row) < k:  # a corpus of almost no other text: whatever is left, in order
            row += [p for p in pool if p not in taken][: k - len(row)]
        out.append(row + [row[-1] if row else ""] * (k - len(row)))
    return out


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




def teacher_embeddings(cfg: Config, bundle, teacher_dir, student):
    """The KD dataset of sentence-transformers' distillation recipe: every distinct training text (queries,
    positives, hard negatives) and the texts of `method.distill.unlabeled`, each with the teacher's embedding as
    its label. Unlabeled texts that are empty, repeated or already in a split are skipped and counted."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

    from tunesmith.hub import loading
    from tunesmith.training.distill import DistillData, unlabeled_texts
    from tunesmith.training.trainer import TrainingError

    with loading(str(teacher_dir), key="method.distill.teacher"):
        teacher = SentenceTransformer(str(teacher_dir), device="cpu", trust_remote_code=cfg.model.trust_remote_code)
    dims = teacher.get_embedding_dimension(), student.get_embedding_dimension()
    if dims[0] != dims[1]:
        raise TrainingError(f"method.distill.teacher: its embeddings have {dims[0]} dims, the student's {dims[1]}; "
                            "the MSE to the teacher's embeddings needs one size (a student of the same base family, "
                            "or a Dense layer to the teacher's size)")
    texts = list(dict.fromkeys([*(str(t) for f in ("query", "positive") for t in bundle.train[f]),
                                *(str(n) for negs in bundle.train["negatives"] for n in negs)]))
    held = [str(t) for f in (bundle.eval, bundle.test) for c in ("query", "positive") for t in f[c]]
    extra, skipped = unlabeled_texts(cfg, [*texts, *held])
    everything = texts + extra
    vectors = teacher.encode(everything, batch_size=cfg.training.eval_batch_size, convert_to_numpy=True,
                             show_progress_bar=False)
    data = DistillData(pd.DataFrame({"text": everything}), len(extra), skipped)
    return Dataset.from_dict({"text": everything, "label": [list(map(float, v)) for v in vectors]}), data
