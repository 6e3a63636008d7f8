"""causal-lm's `SafetyHooks`: the safety suites' prompts answered greedily through the model's chat template."""

from __future__ import annotations

from pathlib import Path

from tunesmith.evaluation.safety import JUDGE_KEY


def answers(model_dir: Path, cfg, key: str, conversations: list[list[dict]], max_new_tokens: int) -> list[str]:
    """The model's greedy answer to each conversation, rendered as in training and serving (no tools)."""
    from transformers import AutoModelForCausalLM

    from tunesmith.families.causal_lm.model import generate, load_tokenizer
    from tunesmith.hub import loading

    template = None if key == JUDGE_KEY else cfg.chat.template  # a judge renders with its own template
    with loading(str(model_dir), key=key):
        tokenizer = load_tokenizer(str(model_dir), trust_remote_code=cfg.model.trust_remote_code, template=template)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), trust_remote_code=cfg.model.trust_remote_code)
    return generate(model, tokenizer, [(list(c), None) for c in conversations], max_new_tokens=max_new_tokens)
