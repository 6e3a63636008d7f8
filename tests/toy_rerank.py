"""Toy reranking rows for tests: a query names a mood, candidates are toy reviews; relevance 2 when the review has
the query's word, 1 when it has the same polarity, 0 otherwise."""

from __future__ import annotations

import random

import pandas as pd
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE


def make_candidates(queries: int, per_query: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for q in range(queries):
        polarity = POSITIVE if q % 2 == 0 else NEGATIVE
        word = rng.choice(polarity)
        query = f"{word} {rng.choice(NEUTRAL)} {q}"
        for _ in range(per_query):
            side = rng.choice([POSITIVE, NEGATIVE])
            mood = word if side is polarity and rng.random() < 0.4 else rng.choice(side)
            body = [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 8))]
            body.insert(rng.randrange(len(body) + 1), mood)
            relevance = 2 if mood == word else int(side is polarity)
            rows.append({"query": query, "document": " ".join(body), "relevance": relevance})
    return pd.DataFrame(rows)
