"""Evaluate an embedding fine-tune on held-out retrieval against its base model (and the champion).

    report = evaluate_embedding(cfg, bundle, run_dir / "model", champion_dir=champion)

Queries are the test split's distinct queries; a query's relevant documents are its test positives. The corpus is
every document of the dataset (positives and hard negatives of all splits), so the other splits' documents are
distractors. Per query: recall@1/5/10, MRR@10 and nDCG@10 (binary relevance); the mean over queries is the metric,
and the per-query values give the paired-bootstrap CI of tuned - base. Scored pairs (text1, text2, score) are
scored by the Spearman / Pearson correlation of cosine similarity with the score instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.contracts import COMPARED, ReportBase
from tunesmith.evaluation.champion import champion_on_unseen, note_unseen_share
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.significance import bootstrap_delta, mean_stat, pearson_stat

KS = (1, 5, 10)
RETRIEVAL_METRICS = (*(f"recall@{k}" for k in KS), "mrr@10", "ndcg@10")
PRIMARY = "mrr@10"
PAIR_SCORE_METRICS = ("spearman", "pearson")
SAMPLES = 8  # queries shown with their top hit, base vs tuned


@dataclass(kw_only=True)
class EmbeddingEvalReport(ReportBase):
    queries: int = 0
    corpus: int = 0
    samples: list[dict] = field(default_factory=list)

    def html_sections(self) -> list[tuple[str, str]]:
        from tunesmith.families.embedding.report import embedding_sections

        return embedding_sections(self)


def retrieval_scores(sim: np.ndarray, relevant: list[set[int]], ks=KS) -> dict[str, np.ndarray]:
    """Per-query recall@k, MRR@10 and nDCG@10 from a (queries, corpus) similarity matrix and relevant doc ids."""
    n = sim.shape[0]
    depth = min(max(max(ks), 10), sim.shape[1])
    top = np.argsort(-sim, axis=1, kind="stable")[:, :depth]
    hits = np.array([[d in rel for d in row] for row, rel in zip(top, relevant, strict=True)], dtype=bool).reshape(n, depth)
    n_rel = np.array([max(len(r), 1) for r in relevant], dtype=np.float64)
    out = {f"recall@{k}": hits[:, :k].sum(axis=1) / n_rel for k in ks}
    ten = hits[:, :10]
    first = np.where(ten.any(axis=1), ten.argmax(axis=1) + 1, 0)
    out["mrr@10"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    discount = 1.0 / np.log2(np.arange(2, ten.shape[1] + 2))
    dcg = (ten * discount).sum(axis=1)
    ideal = np.array([discount[: min(len(r), ten.shape[1])].sum() for r in relevant])
    out["ndcg@10"] = np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1), 0.0)
    return out


@dataclass
class RetrievalSet:
    """Test queries, the corpus, and for each query the corpus ids of its relevant documents."""

    queries: list[str]
    corpus: list[str]
    relevant: list[set[int]]


def retrieval_set(bundle, *, max_corpus: int | None = None, seed: int = 0) -> RetrievalSet:
    """Distinct test queries; a corpus of every distinct document; relevant = the query's test positives."""
    docs: dict[str, int] = {}
    for frame in (bundle.test, bundle.train, bundle.eval):  # test documents first: they are never capped away
        for pos, negs in zip(frame["positive"], frame["negatives"], strict=True):
            for d in (pos, *negs):
                docs.setdefault(d, len(docs))
    groups = bundle.test.groupby("query", sort=False)["positive"].apply(list)
    queries = list(groups.index)
    relevant = [{docs[p] for p in groups[q]} for q in queries]
    corpus = list(docs)
    if max_corpus and len(corpus) > max_corpus:
        keep_ids = sorted(set().union(*relevant)) if relevant else []
        rest = np.setdiff1d(np.arange(len(corpus)), keep_ids)
        extra = np.random.default_rng(seed).permutation(rest)[: max(0, max_corpus - len(keep_ids))]
        keep = np.sort(np.concatenate([np.array(keep_ids, dtype=int), extra.astype(int)]))
        new_id = {int(old): i for i, old in enumerate(keep)}
        corpus = [corpus[i] for i in keep]
        relevant = [{new_id[d] for d in rel} for rel in relevant]
    return RetrievalSet(queries, corpus, relevant)


@dataclass
class _Scored:
    metrics: dict
    per_query: dict[str, np.ndarray]
    top1: list[str]


def _score_retrieval(model, rs: RetrievalSet, batch_size: int) -> _Scored:
    from tunesmith.families.embedding.model import encode

    q, d = encode(model, rs.queries, batch_size=batch_size), encode(model, rs.corpus, batch_size=batch_size)
    sim = q @ d.T
    per = retrieval_scores(sim, rs.relevant)
    top1 = [rs.corpus[i] for i in sim.argmax(axis=1)] if sim.size else []
    return _Scored({k: float(v.mean()) if len(v) else float("nan") for k, v in per.items()}, per, top1)


def _score_pairs(model, test: pd.DataFrame, batch_size: int) -> _Scored:
    from scipy.stats import rankdata

    from tunesmith.families.embedding.model import encode

    a, b = encode(model, test["query"].tolist(), batch_size=batch_size), encode(model, test["positive"].tolist(),
                                                                                batch_size=batch_size)
    cos = (a * b).sum(axis=1).astype(np.float64)
    gold = test["score"].astype(float).to_numpy()
    # Per-row "values" for the bootstrap: the cosine itself; the stat correlates the resampled rows with gold.
    per = {"pearson": cos, "spearman": rankdata(cos)}
    full = np.arange(len(cos))[None]
    metrics = {"pearson": float(pearson_stat(cos, gold)(full)[0]),
               "spearman": float(pearson_stat(rankdata(cos), rankdata(gold))(full)[0])}
    return _Scored(metrics, per, [])


def _deltas(a: _Scored, b: _Scored, cfg, gold: np.ndarray | None, mask: np.ndarray | None = None) -> dict[str, dict]:
    boot = cfg.evaluation.bootstrap
    out = {}
    for name in a.per_query:
        x, y = a.per_query[name], b.per_query[name]
        g = gold
        if mask is not None:
            x, y, g = x[mask], y[mask], (g[mask] if g is not None else None)
        if g is None:
            sa, sb = mean_stat(x), mean_stat(y)
        else:
            from scipy.stats import rankdata

            target = rankdata(g) if name == "spearman" else g
            sa, sb = pearson_stat(x, target), pearson_stat(y, target)
        out[name] = bootstrap_delta(len(x), sa, sb, samples=boot.samples, confidence=boot.confidence, seed=cfg.seed)
    return out


def _load_tuned(model_dir: str | Path, cfg, key: str):
    from sentence_transformers import SentenceTransformer

    from tunesmith.hub import loading

    if not (Path(model_dir) / "modules.json").is_file():
        raise EvalError(f"{model_dir}: not a sentence-transformers model dir (no modules.json)",
                        hint="pass the model/ folder an embedding run wrote")
    with loading(str(model_dir), key=key):
        return SentenceTransformer(str(model_dir), trust_remote_code=cfg.model.trust_remote_code, device="cpu")


def _load_base(cfg):
    from tunesmith.families.embedding.model import load_model
    from tunesmith.hub import loading, resolve_model

    resolved = resolve_model(cfg.model.base, cfg.model.revision)
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        return load_model(resolved.path, cfg, revision=resolved.revision)


def evaluate_embedding(cfg, bundle, model_dir: str | Path, *, champion_dir: str | Path | None = None,
                       champion_name: str = "champion", out_dir: str | Path | None = None) -> EmbeddingEvalReport:
    """Score the tuned model in `model_dir`, the base model (and the champion) on the test split.

    Raises:
        EvalError: no test rows, or a model dir that is not a sentence-transformers model.
    """
    from tunesmith.families.embedding.model import is_scored

    test = bundle.test
    if len(test) == 0:
        raise EvalError("the test split is empty: nothing to evaluate", hint="raise data.split.test or set data.test")
    batch = cfg.training.eval_batch_size
    scored = is_scored(test)
    boot = cfg.evaluation.bootstrap
    gold = test["score"].astype(float).to_numpy() if scored else None
    if scored:
        rs, keys = None, test["query"].astype(str).tolist()

        def score(m):
            return _score_pairs(m, test, batch)
    else:
        rs = retrieval_set(bundle, max_corpus=cfg.embedding.max_corpus, seed=cfg.seed)
        keys = rs.queries

        def score(m):
            return _score_retrieval(m, rs, batch)
    tuned = score(_load_tuned(model_dir, cfg, "model_dir"))
    base = score(_load_base(cfg))
    report = EmbeddingEvalReport(
        primary_metric="spearman" if scored else PRIMARY, tuned=tuned.metrics, baseline=base.metrics,
        uplift=_deltas(tuned, base, cfg, gold), queries=len(keys), corpus=len(rs.corpus) if rs else 0,
        bootstrap={"samples": boot.samples, "confidence": boot.confidence, "seed": cfg.seed},
    )
    if rs is not None:
        rel = [[rs.corpus[i] for i in sorted(r)] for r in rs.relevant]
        report.samples = [{"query": q, "relevant": r[0] if r else "", "base_top1": b, "tuned_top1": t,
                           "base_hit": b in r, "tuned_hit": t in r}
                          for q, r, b, t in zip(rs.queries, rel, base.top1, tuned.top1, strict=True)][:SAMPLES]
    if champion_dir is not None:
        _compare_champion(report, cfg, champion_dir, champion_name, keys, score, tuned, gold)
    return report


def _compare_champion(report, cfg, champion_dir, name, keys, score, tuned: _Scored, gold) -> None:
    """The champion on the test queries it never trained on (its seen_texts.npy)."""
    found = champion_on_unseen(report, champion_dir, name, keys,
                               lambda: score(_load_tuned(champion_dir, cfg, "champion")), unit="test queries")
    if found is None:
        return
    report.champion, report.champion_status = found.scored.metrics, COMPARED
    report.vs_champion = _deltas(tuned, found.scored, cfg, gold, found.mask)
    note_unseen_share(report, name, found.mask, "test queries", " (the metrics in its column use every query)")


evaluate = evaluate_embedding  # the family's evaluation entry (tunesmith.families.common.family)
