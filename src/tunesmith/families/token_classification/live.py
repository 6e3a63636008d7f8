"""Live quality of an extractor: its served entities against the corrected spans that came back."""

from __future__ import annotations


def measure(pairs: list[tuple]) -> dict:
    """Entity-level micro precision, recall and F1: an entity counts when start, end and label all match."""
    tp = fp = fn = 0
    for out, spans, _ in pairs:
        served = {(e["start"], e["end"], e["label"]) for e in out or [] if isinstance(e, dict)}
        true = {(s["start"], s["end"], s["label"]) for s in spans}
        tp, fp, fn = tp + len(served & true), fp + len(served - true), fn + len(true - served)
    if not pairs:
        return {"entity_f1": None, "precision": None, "recall": None}
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"entity_f1": f1, "precision": precision, "recall": recall}
