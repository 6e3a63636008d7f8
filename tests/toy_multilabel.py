"""Toy multi-label rows for tests: reviews that praise, complain and/or mention the acting (any combination)."""

from __future__ import annotations

import random

import pandas as pd
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE

FILLER = [w for w in NEUTRAL if w != "actor"]


def make_multilabel(n: int, seed: int = 0) -> pd.DataFrame:
    """Each label is carried by its own words: praise (a positive word), complaint (a negative word), acting
    ("actor"); a row has 1-3 of them."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        labels = [lab for lab, p in (("praise", 0.5), ("complaint", 0.45), ("acting", 0.35)) if rng.random() < p]
        labels = labels or [rng.choice(["praise", "complaint", "acting"])]
        body = [rng.choice(FILLER) for _ in range(rng.randint(3, 9))]
        words = {"praise": POSITIVE, "complaint": NEGATIVE, "acting": ["actor"]}
        for lab in labels:
            body.insert(rng.randrange(len(body) + 1), rng.choice(words[lab]))
        rows.append({"text": " ".join(body), "label": labels})
    return pd.DataFrame(rows)
