"""Inter-reviewer agreement on items two reviewers both labeled: Cohen's kappa, percent agreement, disagreements.

Each reviewer's latest live decision per item counts; skips are left out (a skip is no label to agree on).
"""

from __future__ import annotations

from itertools import combinations

from tunesmith.review import store


def agreement(url: str, model: str) -> dict:
    """Per reviewer pair with shared items: n, percent agreement, Cohen's kappa; plus every disagreeing item."""
    from sklearn.metrics import cohen_kappa_score

    latest = store.latest_per_reviewer(store.label_rows(url, model))
    voted = {item: {who: r for who, r in by.items() if r["label"]} for item, by in latest.items()}
    reviewers = sorted({who for by in voted.values() for who in by})
    pairs, disagreements = [], []
    for a, b in combinations(reviewers, 2):
        shared = sorted(i for i, by in voted.items() if a in by and b in by)
        if not shared:
            continue
        la = [voted[i][a]["label"] for i in shared]
        lb = [voted[i][b]["label"] for i in shared]
        same = sum(x == y for x, y in zip(la, lb, strict=True))
        # kappa is undefined (nan) when both reviewers used a single, identical label throughout
        kappa = float(cohen_kappa_score(la, lb)) if len(set(la) | set(lb)) > 1 else None
        pairs.append({"reviewers": [a, b], "items": len(shared), "agree": same,
                      "percent_agreement": same / len(shared), "kappa": kappa})
        for i, x, y in zip(shared, la, lb, strict=True):
            if x != y:
                disagreements.append({"item_id": i, "text": voted[i][a]["text"], "guess": voted[i][a]["guess"],
                                      "labels": {a: x, b: y}})
    return {"reviewers": reviewers, "pairs": pairs, "disagreements": disagreements}
