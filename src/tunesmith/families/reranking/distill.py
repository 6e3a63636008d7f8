"""What the distillation report needs from reranking: a model's MRR@10 / nDCG@10 per test query, the paired
comparison of two models over queries, and the cross-encoder's transformers model for the latency measurement."""

from __future__ import annotations

from pathlib import Path

from tunesmith.config import Config
from tunesmith.evaluation.errors import EvalError
from tunesmith.families.reranking.evaluate import (
    _means,
    cross_encoder_scores,
    deltas,
    query_groups,
    ranking_scores,
)


def scores(cfg: Config, bundle, path: Path) -> dict:
    test = bundle.test.reset_index(drop=True)
    _, groups, _ = query_groups(test)
    if not groups:
        raise EvalError("no test query has 2+ candidates with a relevant one: nothing to rank",
                        hint="give test queries several candidate documents")
    per_query = ranking_scores(groups, cross_encoder_scores(path, cfg, test, "model_dir"),
                               test["relevance"].astype(float).to_numpy())
    return {"quality": _means(per_query), "per_query": per_query}


def delta(cfg: Config, a: dict, b: dict, metric: str) -> dict:
    """a - b on mrr@10 or ndcg@10, paired bootstrap over test queries."""
    return {k: float(v) for k, v in deltas(a["per_query"], b["per_query"], cfg)[metric].items()}


def load(path: Path, cfg: Config) -> tuple:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), use_safetensors=True, trust_remote_code=cfg.model.trust_remote_code).eval()
    return model, AutoTokenizer.from_pretrained(str(path), trust_remote_code=cfg.model.trust_remote_code)
