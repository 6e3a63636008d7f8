"""Live quality of a reranker: each request's served scores against the relevance that came back for its
documents, as MRR@10 and nDCG@10 over the requests with at least one relevant document graded."""

from __future__ import annotations

import math
from collections import defaultdict


def measure(pairs: list[tuple]) -> dict:
    queries = defaultdict(list)
    for score, relevance, request_id in pairs:
        queries[request_id].append((float(score), float(relevance)))
    mrr, ndcg = [], []
    for items in queries.values():
        if not any(rel > 0 for _, rel in items):
            continue  # nothing relevant graded: no rank to measure
        ranked = sorted(items, key=lambda item: -item[0])[:10]
        first = next((i for i, (_, rel) in enumerate(ranked) if rel > 0), None)
        mrr.append(0.0 if first is None else 1.0 / (first + 1))
        dcg = sum((2 ** rel - 1) / math.log2(i + 2) for i, (_, rel) in enumerate(ranked))
        ideal = sum((2 ** rel - 1) / math.log2(i + 2)
                    for i, rel in enumerate(sorted((r for _, r in items), reverse=True)[:10]))
        ndcg.append(dcg / ideal if ideal else 0.0)
    if not mrr:
        return {"mrr@10": None, "ndcg@10": None, "queries": 0}
    return {"mrr@10": sum(mrr) / len(mrr), "ndcg@10": sum(ndcg) / len(ndcg), "queries": len(mrr)}
