"""Reviewing a multi-label model's answers: the label set with a checkbox per label, the least certain first."""

from __future__ import annotations

from tunesmith.families.common_review import boundary_uncertainty


def items(rows: list[dict], labels: list[str] | None) -> list[dict]:
    """Each served answer with per-label scores; uncertainty: the label whose score is nearest the 0.5 boundary
    (the tuned per-label thresholds are in the model dir, not the log; 0.5 is their starting point)."""
    out = []
    for i, row in enumerate(rows):
        answer = row["output"]
        scores = answer.get("scores") if isinstance(answer, dict) else None
        if not isinstance(row["input"], str) or not isinstance(scores, dict) or not scores:
            continue
        predicted = sorted(str(x) for x in answer.get("labels") or [])
        names = list(labels or sorted(scores))
        out.append({"index": i, "text": row["input"], "guess": predicted or None,
                    "uncertainty": max(boundary_uncertainty(p) for p in scores.values()),
                    "context": {"labels": names, "scores": {str(k): float(v) for k, v in scores.items()}}})
    return out
