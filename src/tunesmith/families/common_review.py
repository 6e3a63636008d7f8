"""What the families' review hooks share (`tunesmith.contracts.ReviewHooks`): uncertainty from a probability, and
agreement between two reviewers' values."""

from __future__ import annotations

import json


def boundary_uncertainty(p: float, threshold: float = 0.5) -> float:
    """1 at the decision threshold, 0 at certainty (0 or 1): how close a probability is to flipping."""
    p = min(max(float(p), 0.0), 1.0)
    width = threshold if p < threshold else 1.0 - threshold
    return 1.0 - abs(p - threshold) / width if width > 0 else 0.0


def same(a, b) -> float:
    """1 when two reviewers gave the same value (compared as JSON), else 0."""
    return float(json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True))


def jaccard(a, b) -> float:
    """|A and B| / |A or B| of two label sets (two empty sets agree)."""
    a, b = set(a or ()), set(b or ())
    return len(a & b) / len(a | b) if a | b else 1.0
