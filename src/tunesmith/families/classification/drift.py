"""Drift tests of a served classifier: its inputs (length, tokens, embeddings in its own encoder's space), its
predicted labels and confidences, and its calibration on the rows whose true label came back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.monitoring import drift


def accepts(row: dict) -> bool:
    """A /v1/classify answer: a text in, a label out (not a multi-label answer's label set)."""
    out = row["output"]
    return isinstance(row["input"], str) and isinstance(out, dict) and "label" in out and "labels" not in out


def window(rows: list[dict], reference: dict, settings, context) -> dict:
    from tunesmith.registry import model_dir_for

    cfg = context.cfg
    texts = [r["input"] for r in rows]
    model_dir = model_dir_for(context.name, context.version, store=context.store)
    embed = _embedder(model_dir, reference.get("max_length", cfg.model.max_length)) if model_dir else None
    tests = drift.input_drift(texts, reference, settings, embed=embed, seed=cfg.seed)
    tests.update(drift.prediction_drift([r["output"]["label"] for r in rows],
                                        [float(r["output"].get("score") or 0) for r in rows], reference, settings))
    labels = reference["labels"]
    mine = [r for r in context.labeled if r.get("scores") and r["true_label"] in labels]
    if mine:
        proba = np.array([[float(r["scores"].get(label, 0.0)) for label in labels] for r in mine])
        y = np.array([labels.index(r["true_label"]) for r in mine])
        calib = drift.calibration_drift(proba, y, reference, settings, cfg.evaluation.calibration.bins)
        if calib is not None:
            tests["calibration_ece"] = calib
    return tests


def _embedder(model_dir: Path, max_length: int):
    from tunesmith.evaluation.scoring import load_classifier
    from tunesmith.monitoring.reference import embed

    model, tokenizer = load_classifier(model_dir)
    return lambda texts: embed(model, tokenizer, texts, max_length=max_length)
