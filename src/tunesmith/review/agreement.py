"""Inter-reviewer agreement on items two reviewers both decided: percent agreement and a measure per family, with
the items they disagree on.

A classifier's labels get Cohen's kappa; another family's values the measure its `ReviewHooks.agree` gives, averaged
over the shared items (span F1 for entities, Jaccard for label sets, accept/reject agreement for chat answers, ...).
Each reviewer's latest live decision per item counts; skips are left out (a skip is no value to agree on).
"""

from __future__ import annotations

from itertools import combinations

from tunesmith.review import store


def _measure(voted: dict, shared: list[int], a: str, b: str) -> tuple[float | None, str]:
    """The mean of the family's agreement over the shared items, and its name (None for a classifier's labels)."""
    from tunesmith.families import get

    kinds = {store.family_of(voted[i][a]) for i in shared}
    if kinds == {None} or len(kinds) != 1:
        return None, ""
    hooks = get(kinds.pop()).review
    if hooks is None or hooks.agree is None:
        return None, ""
    scores = [float(hooks.agree(voted[i][a]["value"], voted[i][b]["value"])) for i in shared]
    return sum(scores) / len(scores), hooks.agreement or "agreement"


def agreement(url: str, model: str) -> dict:
    """Per reviewer pair with shared items: n, percent agreement, Cohen's kappa (labels) or the family's mean
    agreement; plus every disagreeing item."""
    from sklearn.metrics import cohen_kappa_score

    latest = store.latest_per_reviewer(store.label_rows(url, model))
    voted = {item: {who: r for who, r in by.items() if r["label"]} for item, by in latest.items()}
    reviewers = sorted({who for by in voted.values() for who in by})
    pairs, disagreements = [], []
    for a, b in combinations(reviewers, 2):
        shared = sorted(i for i, by in voted.items() if a in by and b in by)
        if not shared:
            continue
        va = [store.canonical(voted[i][a]["value"]) for i in shared]
        vb = [store.canonical(voted[i][b]["value"]) for i in shared]
        same = sum(x == y for x, y in zip(va, vb, strict=True))
        mean, measure = _measure(voted, shared, a, b)
        kappa = None
        if measure == "" and len(set(va) | set(vb)) > 1:  # undefined when both used one identical label throughout
            kappa = float(cohen_kappa_score(va, vb))
        pairs.append({"reviewers": [a, b], "items": len(shared), "agree": same,
                      "percent_agreement": same / len(shared), "kappa": kappa,
                      "measure": measure or "Cohen's kappa", "mean_agreement": mean})
        for i, x, y in zip(shared, va, vb, strict=True):
            if x != y:
                disagreements.append({"item_id": i, "text": voted[i][a]["text"], "guess": voted[i][a]["guess"],
                                      "labels": {a: voted[i][a]["label"], b: voted[i][b]["label"]}})
    return {"reviewers": reviewers, "pairs": pairs, "disagreements": disagreements}
