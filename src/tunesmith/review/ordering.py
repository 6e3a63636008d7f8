"""Active learning: which items a reviewer sees first.

Two parts. Uncertainty scores each item alone (margin sampling by default: 1 - (p1 - p2), so a 0.51/0.49 split
comes before a 0.9/0.1 one; least-confidence and entropy are the alternatives). Diversity then orders the
queue as a batch with maximal marginal relevance (MMR) over item embeddings: each next pick maximises
`(1 - diversity) * uncertainty - diversity * max cosine similarity to the items already picked`, so twenty
near-copies of one confusing text don't fill the first page of the queue.

    order = mmr_order(uncertainties, embeddings, diversity=0.3)   # indices, review first to last
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tunesmith.config import ReviewStrategy

Embed = Callable[[list[str]], np.ndarray]


Strategy = ReviewStrategy  # margin | least_confidence | entropy


def uncertainty(scores: dict[str, float] | None, confidence: float | None, strategy: Strategy) -> float:
    """How unsure the model was, in [0, 1] (1 = coin flip). Falls back to 1 - confidence without full scores."""
    probs = sorted((float(p) for p in (scores or {}).values()), reverse=True)
    if len(probs) < 2:
        return 1.0 - float(confidence) if confidence is not None else 0.5
    if strategy is Strategy.MARGIN:
        return 1.0 - (probs[0] - probs[1])
    if strategy is Strategy.LEAST_CONFIDENCE:
        return (1.0 - probs[0]) * len(probs) / (len(probs) - 1)  # scaled so a uniform guess scores 1
    total = sum(probs) or 1.0
    entropy = -sum((p / total) * math.log(p / total) for p in probs if p > 0)
    return entropy / math.log(len(probs))


def mmr_order(uncertainties: np.ndarray, embeddings: np.ndarray | None, *, diversity: float) -> list[int]:
    """Greedy MMR over all items: the review order as indices. Without embeddings: by uncertainty alone."""
    u = np.asarray(uncertainties, dtype=np.float64)
    n = len(u)
    if n == 0:
        return []
    if embeddings is None or diversity <= 0:
        return [int(i) for i in np.lexsort((np.arange(n), -u))]  # stable: ties keep insertion order
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms == 0, 1.0, norms)
    max_sim = np.full(n, 0.0)  # similarity to the nearest item picked so far (none yet: 0)
    picked = np.zeros(n, dtype=bool)
    order: list[int] = []
    for _ in range(n):
        score = (1 - diversity) * u - diversity * max_sim
        score[picked] = -np.inf
        best = int(np.argmax(score))  # argmax takes the first of equal scores: insertion order breaks ties
        order.append(best)
        picked[best] = True
        max_sim = np.maximum(max_sim, x @ x[best])
    return order


def tfidf_embed(texts: list[str]) -> np.ndarray:
    """Cheap embeddings for diversity when no encoder is wanted: TF-IDF reduced to at most 64 dims."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    dims = min(64, tfidf.shape[1] - 1, len(texts) - 1)
    if dims < 2:
        return tfidf.toarray()
    return TruncatedSVD(n_components=dims, random_state=0).fit_transform(tfidf)
