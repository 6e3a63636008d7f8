"""Drift tests of a served reranker: its queries (length, tokens) and the distribution of its relevance scores."""

from __future__ import annotations

from tunesmith.families.common import held_out_sample, ks_test, served_outputs, text_reference
from tunesmith.monitoring import drift


def reference(cfg, bundle, model_dir) -> dict:
    pairs = list(zip(held_out_sample(cfg, bundle, "query"), held_out_sample(cfg, bundle, "document"), strict=True))
    scores = served_outputs(model_dir, [(str(q), str(d)) for q, d in pairs])
    return {**text_reference(bundle.train["query"].astype(str).drop_duplicates().tolist()),
            "scores": [round(float(s), 6) for s in scores], "max_length": cfg.model.max_length}


def accepts(row: dict) -> bool:
    return isinstance(row["input"], dict) and "query" in row["input"] and isinstance(row["output"], int | float)


def window(rows: list[dict], ref: dict, settings, context) -> dict:
    queries = list({(r["request_id"], r["input"]["query"]): r["input"]["query"] for r in rows}.values())
    tests = drift.input_drift(queries, ref, settings, seed=context.cfg.seed)
    tests.update(ks_test("score_ks", ref["scores"], [float(r["output"]) for r in rows], settings))
    return tests
