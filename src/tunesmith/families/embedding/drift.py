"""Drift tests of a served embedding model: its queries (length, tokens) and the embeddings it serves: MMD against
the embeddings of held-out queries, and the nearest-neighbour distance (KS): how far each served query lies from the
closest held-out query, against how far held-out queries lie from each other (queries of a kind never seen)."""

from __future__ import annotations

import numpy as np

from tunesmith.families.common import held_out_sample, ks_test, served_outputs, text_reference
from tunesmith.monitoring import drift


def reference(cfg, bundle, model_dir) -> dict:
    vectors = served_outputs(model_dir, [str(q) for q in held_out_sample(cfg, bundle, "query")])
    return {**text_reference(bundle.train["query"].astype(str).tolist()),
            "embeddings": np.round(np.asarray(vectors, dtype=float), 5).tolist(), "max_length": cfg.model.max_length}


def accepts(row: dict) -> bool:
    out = row["output"]
    return isinstance(row["input"], str) and isinstance(out, list) and bool(out) and isinstance(out[0], int | float)


def window(rows: list[dict], ref: dict, settings, context) -> dict:
    tests = drift.input_drift([r["input"] for r in rows], ref, settings, seed=context.cfg.seed)
    if ref.get("embeddings"):
        rng = np.random.default_rng(context.cfg.seed)
        pick = sorted(rng.choice(len(rows), size=min(settings.max_rows, len(rows)), replace=False).tolist())
        current = np.asarray([rows[i]["output"] for i in pick], dtype=float)
        stat, p = drift.mmd_test(np.asarray(ref["embeddings"]), current, permutations=settings.permutations,
                                 seed=context.cfg.seed)
        tests["embedding_mmd"] = drift.make_test("mmd", stat, p, p < settings.p_value, rows=len(pick))
        tests.update(nearest_neighbour_test(np.asarray(ref["embeddings"]), current, settings))
    return tests


def nearest_neighbour_test(reference: np.ndarray, current: np.ndarray, settings) -> dict:
    """KS of cosine distances to the nearest reference vector: each served vector's, against each reference vector's
    to its nearest other reference vector."""
    if len(reference) < 2 or not len(current):
        return {}
    ref = reference / np.clip(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12, None)
    cur = current / np.clip(np.linalg.norm(current, axis=1, keepdims=True), 1e-12, None)
    within = ref @ ref.T
    np.fill_diagonal(within, -np.inf)
    ref_nn = (1 - within.max(axis=1)).round(6).tolist()
    cur_nn = (1 - (cur @ ref.T).max(axis=1)).round(6).tolist()
    return ks_test("nearest_neighbour_ks", ref_nn, cur_nn, settings)
