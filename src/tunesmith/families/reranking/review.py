"""Reviewing a reranker's answers: the query and the document, graded for relevance (0-3)."""

from __future__ import annotations

from tunesmith.families.common_review import boundary_uncertainty


def items(rows: list[dict], _labels) -> list[dict]:
    """Each scored (query, document); uncertainty: how near the relevance probability is to 0.5. The guess is
    relevant (1) or not (0) as the model's probability says."""
    out = []
    for i, row in enumerate(rows):
        pair, score = row["input"], row["output"]
        if not isinstance(pair, dict) or not isinstance(score, int | float) or "query" not in pair:
            continue
        out.append({"index": i, "text": f"{pair['query']}\n\n{pair.get('document', '')}",
                    "guess": 1.0 if score >= 0.5 else 0.0, "uncertainty": boundary_uncertainty(score),
                    "context": {"query": str(pair["query"]), "document": str(pair.get("document", "")),
                                "score": float(score)}})
    return out
