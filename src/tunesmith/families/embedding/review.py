"""Reviewing an embedding model: a logged query with its nearest logged texts, the reviewer picks the relevant one.

The prediction log holds the served embedding of every text, so the candidates are ranked with the served
version's own vectors, no model needed; queries whose two nearest texts are almost equally close (the retrieval
is a toss-up) come first.
"""

from __future__ import annotations

import numpy as np

CANDIDATES = 5
MAX_TEXTS = 5000  # the window's newest distinct texts that are ranked against each other


def items(rows: list[dict], _labels) -> list[dict]:
    texts: dict[str, tuple[int, np.ndarray]] = {}
    for i, row in enumerate(rows):
        vec = row["output"]
        if isinstance(row["input"], str) and isinstance(vec, list) and vec and isinstance(vec[0], int | float):
            texts[row["input"]] = (i, np.asarray(vec, dtype=np.float32))
    names = list(texts)[-MAX_TEXTS:]
    if len(names) < 2:
        return []
    matrix = np.stack([texts[n][1] for n in names])
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    out = []
    for name, (order, scores) in zip(names, _nearest(matrix, CANDIDATES), strict=True):
        candidates = [{"document": names[j], "similarity": round(float(s), 4)} for j, s in zip(order, scores,
                                                                                                strict=True)]
        gap = candidates[0]["similarity"] - candidates[1]["similarity"] if len(candidates) > 1 else 1.0
        out.append({"index": texts[name][0], "text": name,
                    "guess": {"document": candidates[0]["document"], "relevance": 1.0,  # the rest: hard negatives
                              "negatives": [c["document"] for c in candidates[1:]]},
                    "uncertainty": float(np.clip(1.0 - gap / 0.2, 0.0, 1.0)),  # a 0.2 cosine gap: clear-cut
                    "context": {"candidates": candidates}})
    return out


def _nearest(matrix: np.ndarray, k: int, chunk: int = 256):
    """Each row's k nearest other rows (cosine, unit rows), most similar first, ties in row order: a block of rows
    at a time, so 5,000 texts never hold a 5,000 x 5,000 matrix."""
    for start in range(0, len(matrix), chunk):
        sims = matrix[start:start + chunk] @ matrix.T
        for r in range(len(sims)):
            sims[r, start + r] = -np.inf  # never the query itself
            order = np.argsort(-sims[r], kind="stable")[:min(k, len(matrix) - 1)]
            yield order.tolist(), sims[r, order].tolist()


def agree(a, b) -> float:
    """1 when two reviewers chose the same document (and relevance), else 0."""
    return float(a.get("document") == b.get("document") and a.get("relevance") == b.get("relevance"))
