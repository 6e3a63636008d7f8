"""Evaluate a reranker on the test queries: MRR@10 and nDCG@10 over each query's candidates, against the base model
used as a bi-encoder (cosine ranking: the retrieval a team would put a reranker on top of) and the champion.

    report = evaluate_reranking(cfg, bundle, run_dir / "model", champion_dir=champion)

A query counts when it has at least two candidates and at least one with relevance > 0. nDCG uses the graded gain
2^relevance - 1. Uplift is tuned - baseline with a paired bootstrap over queries. The untuned cross-encoder is not a
baseline: its classifier head is freshly initialised, so its ranking is noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.contracts import COMPARED, ReportBase
from tunesmith.evaluation.champion import champion_on_unseen, note_unseen_share
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.significance import bootstrap_delta, mean_stat

METRICS = ("mrr@10", "ndcg@10")
K = 10
EXAMPLES = 5


@dataclass(kw_only=True)
class RerankEvalReport(ReportBase):
    queries: int = 0
    candidates: int = 0
    skipped_queries: int = 0
    baseline_model: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.reranking.report import reranking_sections

        return reranking_sections(self)


def ranking_scores(groups: list[np.ndarray], scores: np.ndarray, relevance: np.ndarray, k: int = K) -> dict[str, np.ndarray]:
    """Per query (a group of row indices): reciprocal rank of the first relevant candidate within the top k, and
    nDCG@k with gain 2^rel - 1 (ties broken by input order)."""
    mrr, ndcg = np.zeros(len(groups)), np.zeros(len(groups))
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    for q, idx in enumerate(groups):
        order = idx[np.argsort(-scores[idx], kind="stable")][:k]
        rel = relevance[order]
        hits = np.flatnonzero(rel > 0)
        mrr[q] = 1.0 / (hits[0] + 1) if len(hits) else 0.0
        gains = (2.0 ** rel - 1) @ discount[: len(rel)]
        ideal_rel = np.sort(relevance[idx])[::-1][:k]
        ideal = (2.0 ** ideal_rel - 1) @ discount[: len(ideal_rel)]
        ndcg[q] = gains / ideal if ideal > 0 else 0.0
    return {"mrr@10": mrr, "ndcg@10": ndcg}


def query_groups(test: pd.DataFrame) -> tuple[list[str], list[np.ndarray], int]:
    """Rankable queries (>= 2 candidates, >= 1 relevant), their row indices, and how many queries were skipped."""
    keys, groups, skipped = [], [], 0
    rel = test["relevance"].astype(float).to_numpy()
    for query, idx in test.groupby("query", sort=False).indices.items():
        if len(idx) >= 2 and (rel[idx] > 0).any():
            keys.append(str(query))
            groups.append(np.asarray(idx))
        else:
            skipped += 1
    return keys, groups, skipped


def deltas(a: dict[str, np.ndarray], b: dict[str, np.ndarray], cfg) -> dict[str, dict]:
    boot = cfg.evaluation.bootstrap
    n = len(next(iter(a.values())))
    return {m: bootstrap_delta(n, mean_stat(a[m]), mean_stat(b[m]), samples=boot.samples, confidence=boot.confidence,
                               seed=cfg.seed) for m in METRICS}


def _means(per_query: dict[str, np.ndarray]) -> dict[str, float]:
    return {m: float(v.mean()) if len(v) else float("nan") for m, v in per_query.items()}


def bi_encoder_scores(cfg, test: pd.DataFrame) -> np.ndarray:
    """Cosine similarity of query and document embeddings from the base model (a sentence-transformers model)."""
    from tunesmith.encoders import encode_sentences as encode
    from tunesmith.encoders import sentence_model
    from tunesmith.hub import loading, resolve_model

    resolved = resolve_model(cfg.model.base, cfg.model.revision)
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):  # mean pooled, unit length
        model = sentence_model(resolved.path, max_length=cfg.model.max_length, revision=resolved.revision,
                               trust_remote_code=cfg.model.trust_remote_code)
    q = encode(model, test["query"].astype(str).tolist(), batch_size=cfg.training.eval_batch_size)
    d = encode(model, test["document"].astype(str).tolist(), batch_size=cfg.training.eval_batch_size)
    return (q * d).sum(axis=1)


def cross_encoder_scores(model_dir: str | Path, cfg, test: pd.DataFrame, key: str) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    from tunesmith.families.reranking.model import predict
    from tunesmith.hub import loading

    if not (Path(model_dir) / "config.json").is_file():
        raise EvalError(f"{model_dir}: not a model dir (no config.json) ({key})",
                        hint="pass a trained reranker folder such as <run>/model")
    with loading(str(model_dir), key=key):
        model = CrossEncoder(str(model_dir), device="cpu", trust_remote_code=cfg.model.trust_remote_code)
    if model.num_labels != 1:
        raise EvalError(f"{model_dir}: the cross-encoder has {model.num_labels} outputs; a reranker has 1",
                        hint="evaluate it with the config it was trained with")
    return predict(model, test["query"].astype(str).tolist(), test["document"].astype(str).tolist(),
                   batch_size=cfg.training.eval_batch_size)


def evaluate_reranking(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
                       champion_name: str = "champion", out_dir: str | Path | None = None) -> RerankEvalReport:
    """Rank each test query's candidates with the tuned cross-encoder, the base bi-encoder (and the champion).

    Raises:
        EvalError: no rankable test query, or a model dir that is not a 1-output cross-encoder.
    """
    test = bundle.test.reset_index(drop=True)
    keys, groups, skipped = query_groups(test)
    if not groups:
        raise EvalError("no test query has >= 2 candidates with at least one relevant: nothing to rank",
                        hint="give each query several candidates (mine hard negatives) and raise data.split.test")
    rel = test["relevance"].astype(float).to_numpy()
    tuned_s = cross_encoder_scores(model_dir, cfg, test, "model_dir")
    base_s = bi_encoder_scores(cfg, test)
    tuned, base = ranking_scores(groups, tuned_s, rel), ranking_scores(groups, base_s, rel)
    boot = cfg.evaluation.bootstrap
    report = RerankEvalReport(
        primary_metric="mrr@10", tuned=_means(tuned), baseline=_means(base), uplift=deltas(tuned, base, cfg),
        queries=len(groups), candidates=int(sum(len(g) for g in groups)), skipped_queries=skipped,
        baseline_model={"method": "the base model as a bi-encoder: cosine of mean-pooled query and document "
                        "embeddings", "model": cfg.model.base},
        bootstrap={"samples": boot.samples, "confidence": boot.confidence, "seed": cfg.seed, "over": "queries"},
    )
    if skipped:
        report.notes.append(f"{skipped} test queries skipped (fewer than 2 candidates or none relevant)")
    for q in np.argsort(tuned["mrr@10"] - base["mrr@10"], kind="stable")[:EXAMPLES]:  # where tuned does worst
        idx = groups[q]
        top = idx[np.argsort(-tuned_s[idx], kind="stable")][:3]
        report.examples.append({"query": keys[q], "tuned_mrr": float(tuned["mrr@10"][q]),
                                "baseline_mrr": float(base["mrr@10"][q]),
                                "tuned_top3": [{"document": str(test["document"].iat[i])[:160],
                                                "relevance": float(rel[i]), "score": float(tuned_s[i])} for i in top]})
    if champion_dir is not None:
        _compare_champion(report, cfg, champion_dir, champion_name, test, keys, groups, rel, tuned)
    return report


def _compare_champion(report, cfg, champion_dir, name, test, keys, groups, rel, tuned) -> None:
    found = champion_on_unseen(report, champion_dir, name, keys,
                               lambda: cross_encoder_scores(champion_dir, cfg, test, "champion"), unit="test queries")
    if found is None:
        return
    mask = found.mask
    champ = ranking_scores([g for g, m in zip(groups, mask, strict=True) if m], found.scored, rel)
    mine = {m: v[mask] for m, v in tuned.items()}
    report.champion, report.champion_status = _means(champ), COMPARED
    report.vs_champion = deltas(mine, champ, cfg)
    note_unseen_share(report, name, mask, "test queries")


evaluate = evaluate_reranking  # the family's evaluation entry (tunesmith.families.common.family)
