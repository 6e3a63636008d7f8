"""What the distillation report needs from embedding: a model's retrieval metrics per test query (or its correlation
with scored pairs), the paired comparison of two models, and the transformers model inside for the latency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.config import Config
from tunesmith.families.embedding.evaluate import (
    PRIMARY,
    _deltas,
    _load_tuned,
    _score_pairs,
    _score_retrieval,
    retrieval_set,
)
from tunesmith.families.embedding.model import is_scored


def scores(cfg: Config, bundle, path: Path) -> dict:
    model = _load_tuned(path, cfg, "model_dir")
    batch = cfg.training.eval_batch_size
    if is_scored(bundle.test):
        scored = _score_pairs(model, bundle.test, batch)
        return {"quality": scored.metrics, "scored": scored, "gold": bundle.test["score"].astype(float).to_numpy()}
    scored = _score_retrieval(model, retrieval_set(bundle, max_corpus=cfg.embedding.max_corpus, seed=cfg.seed), batch)
    quality = {PRIMARY: scored.metrics[PRIMARY], **scored.metrics}  # the report's metric comes first: MRR@10
    return {"quality": quality, "scored": scored, "gold": None}


def delta(cfg: Config, a: dict, b: dict, metric: str) -> dict:
    """a - b on a retrieval metric (mrr@10, recall@k, ndcg@10) over test queries, or on spearman / pearson of scored
    pairs, paired bootstrap."""
    gold = a["gold"] if a["gold"] is None else np.asarray(a["gold"])
    return {k: float(v) for k, v in _deltas(a["scored"], b["scored"], cfg, gold)[metric].items()}


def load(path: Path, cfg: Config) -> tuple:
    model = _load_tuned(path, cfg, "model_dir")
    return model[0].model.eval(), model.tokenizer
