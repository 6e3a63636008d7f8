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

from tunesmith.evaluation.champion import NONE, NOT_COMPARABLE, not_compared_reason, unseen_mask
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.significance import bootstrap_delta, flat_family_metrics, mean_stat
from tunesmith.io import json_safe

METRICS = ("mrr@10", "ndcg@10")
K = 10
EXAMPLES = 5


@dataclass
class RerankEvalReport:
    primary_metric: str
    tuned: dict
    baseline: dict
    uplift: dict[str, dict]
    queries: int = 0
    candidates: int = 0
    skipped_queries: int = 0
    champion: dict | None = None
    vs_champion: dict[str, dict] | None = None
    champion_status: str = NONE
    baseline_model: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    bootstrap: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    @property
    def has_champion(self) -> bool:
        return self.champion_status != NONE

    @property
    def champion_note(self) -> str:
        return not_compared_reason(self.champion_status)

    def to_dict(self) -> dict:
        return json_safe({k: getattr(self, k) for k in self.__dataclass_fields__})

    def flat_metrics(self) -> dict[str, float]:
        """mrr@10, baseline.ndcg@10, uplift.mrr@10, uplift_ci_low.mrr@10, vs_champion.ndcg@10, ..."""
        return flat_family_metrics(self.tuned, self.baseline, self.champion, self.uplift, self.vs_champion)

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
    from tunesmith.families.embedding.evaluate import _load_base
    from tunesmith.families.embedding.model import encode

    model = _load_base(cfg)
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
    try:
        mask = unseen_mask(champion_dir, keys)
        champ_s = cross_encoder_scores(champion_dir, cfg, test, "champion")
    except (EvalError, OSError, ValueError) as exc:
        report.champion_status = f"{NOT_COMPARABLE}: {name} does not load: {str(exc).splitlines()[0]}"
        report.notes.append(f"champion {report.champion_status}; its vs_champion.* and champion.* gate rules fail")
        return
    mask = np.ones(len(keys), dtype=bool) if mask is None else mask
    if not mask.any():
        report.champion_status = f"{NOT_COMPARABLE}: {name} trained on every test query"
        report.notes.append(f"champion {report.champion_status}; its vs_champion.* and champion.* gate rules fail")
        return
    champ = ranking_scores([g for g, m in zip(groups, mask, strict=True) if m], champ_s, rel)
    mine = {m: v[mask] for m, v in tuned.items()}
    report.champion, report.champion_status = _means(champ), "compared"
    report.vs_champion = deltas(mine, champ, cfg)
    if not mask.all():
        report.notes.append(f"{name} compared on the {int(mask.sum())} of {len(mask)} test queries it did not train on")
