"""Drift tests of a served chat model: its prompts (the last user turn: length, tokens, and its embedding in the
served model's own hidden space, MMD against held-out prompts) and its answers (length, and the share that refuse)
against the answers it was trained on."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tunesmith.families.common import held_out_sample, ks_test, served_model, text_reference
from tunesmith.monitoring import drift
from tunesmith.monitoring.reference import text_length

# A refusal, as the usual assistant phrasings start one (a heuristic: the share moving is what is tested).
REFUSAL = re.compile(r"\b(i'?m sorry|i am sorry|i can(?:'|no)?t (?:help|assist|do)|i cannot|i'?m (?:not able|unable)|"
                     r"i am (?:not able|unable)|as an ai)\b", re.IGNORECASE)


def last_user_turn(messages) -> str:
    if isinstance(messages, str):
        return messages  # /v1/completions logs its prompt
    turns = [m.get("content", "") for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
    return str(turns[-1]) if turns else ""


def reference(cfg, bundle, model_dir) -> dict:
    prompts, answers = [], []
    for messages in bundle.train["messages"]:
        for i, m in enumerate(messages):
            if m.get("role") == "assistant" and m.get("content"):
                prompts.append(last_user_turn(messages[:i]))
                answers.append(str(m["content"]))
    held = [last_user_turn(_before_last_answer(m)) for m in held_out_sample(cfg, bundle, "messages")]
    vectors = prompt_embeddings(model_dir, [p for p in held if p], cfg.model.max_length)
    return {**text_reference(prompts), "answer_lengths": [text_length(a) for a in answers],
            "refusals": sum(bool(REFUSAL.search(a)) for a in answers), "answers": len(answers),
            "embeddings": np.round(vectors, 5).tolist(), "max_length": cfg.model.max_length}


def _before_last_answer(messages) -> list:
    last = max((i for i, m in enumerate(messages or []) if isinstance(m, dict) and m.get("role") == "assistant"),
               default=len(messages or []))
    return list(messages or [])[:last]


def prompt_embeddings(model_dir: Path, prompts: list[str], max_length: int, batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last hidden states of the served model's decoder over each prompt (no chat template): where the
    model itself places what it is asked."""
    import torch

    served = served_model(model_dir)
    model, tokenizer = served.model, served.tokenizer
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    out = []
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(prompts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            hidden = decoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.append(((hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def accepts(row: dict) -> bool:
    return isinstance(row["output"], dict) and "text" in row["output"] and "finish_reason" in row["output"]


def window(rows: list[dict], ref: dict, settings, context) -> dict:
    from tunesmith.registry import model_dir_for

    prompts = [last_user_turn(r["input"]) for r in rows]
    tests = drift.input_drift(prompts, ref, settings, seed=context.cfg.seed)
    model_dir = model_dir_for(context.name, context.version, store=context.store) if ref.get("embeddings") else None
    if model_dir is not None:
        rng = np.random.default_rng(context.cfg.seed)
        pick = sorted(rng.choice(len(prompts), size=min(settings.max_rows, len(prompts)), replace=False).tolist())
        current = prompt_embeddings(model_dir, [prompts[i] or " " for i in pick], ref.get("max_length", 512))
        stat, p = drift.mmd_test(np.asarray(ref["embeddings"]), current, permutations=settings.permutations,
                                 seed=context.cfg.seed)
        tests["prompt_embedding_mmd"] = drift.make_test("mmd", stat, p, p < settings.p_value, rows=len(pick))
    answers = [str(r["output"]["text"]) for r in rows]
    tests.update(ks_test("answer_length_ks", ref["answer_lengths"], [text_length(a) for a in answers], settings))
    refused = sum(bool(REFUSAL.search(a)) for a in answers)
    stat, p = drift.chi_square([ref["refusals"], ref["answers"] - ref["refusals"]], [refused, len(answers) - refused])
    tests["refusal_rate"] = drift.make_test("chi2", stat, p, p < settings.p_value,
                                            reference_rate=round(ref["refusals"] / max(ref["answers"], 1), 4),
                                            window_rate=round(refused / max(len(answers), 1), 4))
    return tests
