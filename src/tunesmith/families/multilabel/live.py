"""Live quality of a multi-label model: its served label sets against the true sets that came back."""

from __future__ import annotations


def measure(pairs: list[tuple]) -> dict:
    """micro-F1 and macro-F1 over the labels seen (served or true), and the Hamming loss."""
    sets = [(set(out.get("labels") or []) if isinstance(out, dict) else set(), set(true)) for out, true, _ in pairs]
    if not sets:
        return {"micro_f1": None, "macro_f1": None, "hamming_loss": None}
    labels = sorted(set().union(*(p | t for p, t in sets)))
    tp = {k: sum(k in p and k in t for p, t in sets) for k in labels}
    fp = {k: sum(k in p and k not in t for p, t in sets) for k in labels}
    fn = {k: sum(k not in p and k in t for p, t in sets) for k in labels}
    micro_den = 2 * sum(tp.values()) + sum(fp.values()) + sum(fn.values())
    per_label = [2 * tp[k] / d if (d := 2 * tp[k] + fp[k] + fn[k]) else 1.0 for k in labels]
    wrong = sum(len(p ^ t) for p, t in sets)
    return {"micro_f1": 2 * sum(tp.values()) / micro_den if micro_den else 1.0,
            "macro_f1": sum(per_label) / len(per_label) if per_label else None,
            "hamming_loss": wrong / (len(sets) * len(labels)) if labels else 0.0}
