"""Live quality of a served embedding model: for each logged query whose user accepted a document, where that
document ranks, by cosine similarity to the served query embedding, among every document accepted in the window
(in-window retrieval: the candidate corpus is the documents users accepted, embedded by the same version)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_VECTORS: dict[tuple[str, str], np.ndarray] = {}


def measure(pairs: list[tuple], model_dir: Path) -> dict:
    """MRR@10, recall@1 and recall@10 of the accepted documents, and how many candidates they ranked among."""
    queries = [(np.asarray(out, dtype=float), value["document"]) for out, value, _ in pairs
               if isinstance(value, dict) and value.get("relevance", 0) > 0 and isinstance(out, list)]
    if not queries:
        return {"mrr@10": None, "recall@1": None, "recall@10": None, "candidates": 0}
    documents = sorted({doc for _, doc in queries})
    matrix = _unit(np.stack(_encode(model_dir, documents)))
    position = {doc: i for i, doc in enumerate(documents)}
    ranks = []
    for vector, doc in queries:
        scores = matrix @ _unit(vector[None, :])[0]
        ranks.append(1 + int((scores > scores[position[doc]]).sum()))
    ranks = np.asarray(ranks)
    return {"mrr@10": float(np.where(ranks <= 10, 1.0 / ranks, 0.0).mean()), "recall@1": float((ranks <= 1).mean()),
            "recall@10": float((ranks <= 10).mean()), "candidates": len(documents)}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def _encode(model_dir: Path, texts: list[str]) -> list[np.ndarray]:
    key = str(model_dir)
    if len(_VECTORS) > 200_000:  # a long-lived process monitoring many windows: start over rather than grow
        _VECTORS.clear()
    missing = [t for t in texts if (key, t) not in _VECTORS]
    if missing:
        from tunesmith.families.common import served_model

        served = served_model(model_dir)
        for start in range(0, len(missing), 64):
            chunk = missing[start:start + 64]
            for text, vector in zip(chunk, served.family.predict(served, chunk), strict=True):
                _VECTORS[(key, text)] = np.asarray(vector, dtype=float)
    return [_VECTORS[(key, t)] for t in texts]
