"""Drift tests of a served extractor: its inputs, how many entities it finds per text, and the entity-type mix."""

from __future__ import annotations

from collections import Counter

from tunesmith.families.common import held_out_sample, ks_test, served_outputs, text_reference
from tunesmith.monitoring import drift


def reference(cfg, bundle, model_dir) -> dict:
    outputs = served_outputs(model_dir, held_out_sample(cfg, bundle, "text"))
    types = Counter(e["label"] for ents in outputs for e in ents)
    return {**text_reference(bundle.train["text"].astype(str).tolist()),
            "entities_per_text": [len(ents) for ents in outputs], "entity_types": dict(types),
            "max_length": cfg.model.max_length}


def accepts(row: dict) -> bool:
    out = row["output"]  # entities (dicts), not an embedding's numbers
    return isinstance(row["input"], str) and isinstance(out, list) and all(isinstance(e, dict) for e in out)


def window(rows: list[dict], ref: dict, settings, context) -> dict:
    tests = drift.input_drift([r["input"] for r in rows], ref, settings, seed=context.cfg.seed)
    tests.update(ks_test("entities_per_text_ks", ref["entities_per_text"], [len(r["output"]) for r in rows],
                         settings))
    window_types = Counter(e["label"] for r in rows for e in r["output"] if isinstance(e, dict))
    types = sorted(set(ref["entity_types"]) | set(window_types))
    ref_counts = [ref["entity_types"].get(t, 0) for t in types]
    cur_counts = [window_types.get(t, 0) for t in types]
    if types and sum(cur_counts):
        value = drift.psi(ref_counts, cur_counts)
        stat, p = drift.chi_square(ref_counts, cur_counts)
        tests["entity_type_psi"] = drift.make_test("psi", value, None, value > settings.psi)
        tests["entity_type_chi2"] = drift.make_test("chi2", stat, p, p < settings.p_value)
    return tests
