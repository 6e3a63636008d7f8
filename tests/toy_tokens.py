"""Toy extraction data for tests: toy-vocabulary sentences whose entities are GOOD (one or two praise words in a
row: one entity) and BAD (a complaint word); learnable by a tiny model in a few steps."""

from __future__ import annotations

import random

import pandas as pd
from tests.toy import NEGATIVE, NEUTRAL, POSITIVE


def make_tagged(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows with `tokens` and IOB2 `tags` (every sentence has at least one entity)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 8))]
        tags = ["O"] * len(words)
        for _ in range(rng.randint(1, 2)):
            at = rng.choice([i for i in range(len(words) + 1) if i == len(words) or not tags[i].startswith("I-")])
            if rng.random() < 0.5:
                span = [rng.choice(POSITIVE)] + ([rng.choice(POSITIVE)] if rng.random() < 0.4 else [])
                kind = "GOOD"
            else:
                span, kind = [rng.choice(NEGATIVE)], "BAD"
            words[at:at] = span
            tags[at:at] = [f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1)
        rows.append({"tokens": words, "tags": tags})
    return pd.DataFrame(rows)
