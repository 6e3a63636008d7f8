"""Toy retrieval pairs on the tiny BERT's vocabulary: a query and its document share one topic word."""

from __future__ import annotations

import random

import pandas as pd
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE

TOPICS = POSITIVE + NEGATIVE + ["film", "movie", "plot", "actor", "story", "scene", "script"]
FILLER = ["the", "a", "was", "and", "with"]


def make_pairs(n: int, seed: int = 0, negatives: bool = False) -> pd.DataFrame:
    """n (query, positive) rows; a topic word carries the match, fillers are noise. Each query is distinct."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        topic = TOPICS[len(rows) % len(TOPICS)]
        query = " ".join([topic, *rng.sample(FILLER, 2), rng.choice(NEUTRAL)])
        if query in seen:
            continue
        seen.add(query)
        row = {"query": query, "positive": " ".join([rng.choice(FILLER), topic, rng.choice(FILLER), topic])}
        if negatives:
            other = rng.choice([t for t in TOPICS if t != topic])
            row["negative"] = [" ".join([rng.choice(FILLER), other, rng.choice(FILLER), other])]
        rows.append(row)
    return pd.DataFrame(rows)
