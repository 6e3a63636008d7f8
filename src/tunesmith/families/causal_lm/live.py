"""Live quality of a chat model: the thumbs that came back on its answers."""

from __future__ import annotations


def measure(pairs: list[tuple]) -> dict:
    """The share of answers rated up, and the share a reviewer corrected."""
    if not pairs:
        return {"thumbs_up_rate": None, "corrected_rate": None}
    ups = sum(value.get("thumbs") == "up" for _, value, _ in pairs)
    corrected = sum("correction" in value for _, value, _ in pairs)
    return {"thumbs_up_rate": ups / len(pairs), "corrected_rate": corrected / len(pairs)}


def served(rows: list[dict], cfg) -> dict:
    """The share of served answers in the window that are JSON valid against `evaluation.json_schema` (no feedback
    needed); {} when the config sets no schema."""
    from tunesmith.families.causal_lm.text_metrics import json_valid

    schema = cfg.evaluation.json_schema
    answers = [str(r["output"]["text"]) for r in rows if isinstance(r["output"], dict) and "text" in r["output"]]
    if schema is None or not answers:
        return {}
    valid, _ = json_valid(answers, schema)
    return {"json_valid_rate": sum(valid) / len(valid)}


def scheduled(cfg, model_dir) -> dict:
    """The must-pass regression suite (`evaluation.regression`) re-run against a served version's model, greedy as
    the evaluation gate runs it: the pass rate and the failed cases' names; {} without a suite."""
    from tunesmith.families.causal_lm.model import generate
    from tunesmith.families.causal_lm.suite import check, load_suite
    from tunesmith.families.common import served_model

    if not cfg.evaluation.regression:
        return {}
    suite = load_suite(cfg.resolve_path(cfg.evaluation.regression))
    model = served_model(model_dir)
    with model.lock:
        answers = generate(model.model, model.tokenizer, [(c.messages, None) for c in suite],
                           max_new_tokens=cfg.chat.max_new_tokens)
    results = [check(c, a) for c, a in zip(suite, answers, strict=True)]
    return {"regression_pass_rate": sum(r.passed for r in results) / len(results),
            "failed": [r.name for r in results if not r.passed]}
