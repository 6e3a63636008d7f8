"""Drift tests of a served embedding model: its queries (length, tokens) and the embeddings it serves (MMD
against the embeddings of held-out queries)."""

from __future__ import annotations

import numpy as np

from tunesmith.families.common import held_out_sample, served_outputs, text_reference
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
    return tests
