"""Reviewing extracted entities: the text with its spans highlighted, which the reviewer edits."""

from __future__ import annotations


def items(rows: list[dict], _labels) -> list[dict]:
    """Each served text with its entities; uncertainty: 1 - the lowest entity score (a text where nothing was
    found: 0.5, entities may have been missed)."""
    out = []
    for i, row in enumerate(rows):
        text, found = row["input"], row["output"]
        if not isinstance(text, str) or not isinstance(found, list):
            continue
        spans = [{"start": int(e["start"]), "end": int(e["end"]), "label": str(e["label"])}
                 for e in found if isinstance(e, dict) and {"start", "end", "label"} <= set(e)]
        scores = [float(e["score"]) for e in found if isinstance(e, dict) and isinstance(e.get("score"), int | float)]
        out.append({"index": i, "text": text, "guess": spans, "uncertainty": 1.0 - min(scores) if scores else 0.5,
                    "context": {}})
    return out


def agree(a, b) -> float:
    """Span F1 between two reviewers: exact (start, end, label) matches; two empty lists agree."""
    sa = {(s["start"], s["end"], s["label"]) for s in a or ()}
    sb = {(s["start"], s["end"], s["label"]) for s in b or ()}
    return 2 * len(sa & sb) / (len(sa) + len(sb)) if sa or sb else 1.0
