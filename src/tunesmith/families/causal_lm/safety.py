"""causal-lm's `SafetyHooks`: the safety suites' prompts answered greedily through the model's chat template."""

from __future__ import annotations

from pathlib import Path


def answers(model_dir: Path, cfg, key: str, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
    """The model's greedy answer to each conversation, rendered as in training and serving (no tools)."""
    from tunesmith.families.causal_lm.evaluate import load_lm
    from tunesmith.families.causal_lm.model import generate

    model, tokenizer = load_lm(model_dir, cfg, key)
    return generate(model, tokenizer, [(list(c), None) for c in conversations], max_new_tokens=max_new_tokens)
