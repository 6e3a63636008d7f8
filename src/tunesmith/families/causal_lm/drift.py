"""Drift tests of a served chat model: its prompts (the last user turn: length, tokens) and its answers (length,
and the share that refuse) against the answers it was trained on."""

from __future__ import annotations

import re

from tunesmith.families.common import ks_test, text_reference
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
    return {**text_reference(prompts), "answer_lengths": [text_length(a) for a in answers],
            "refusals": sum(bool(REFUSAL.search(a)) for a in answers), "answers": len(answers)}


def accepts(row: dict) -> bool:
    return isinstance(row["output"], dict) and "text" in row["output"] and "finish_reason" in row["output"]


def window(rows: list[dict], ref: dict, settings, context) -> dict:
    tests = drift.input_drift([last_user_turn(r["input"]) for r in rows], ref, settings, seed=context.cfg.seed)
    answers = [str(r["output"]["text"]) for r in rows]
    tests.update(ks_test("answer_length_ks", ref["answer_lengths"], [text_length(a) for a in answers], settings))
    refused = sum(bool(REFUSAL.search(a)) for a in answers)
    stat, p = drift.chi_square([ref["refusals"], ref["answers"] - ref["refusals"]], [refused, len(answers) - refused])
    tests["refusal_rate"] = drift.make_test("chi2", stat, p, p < settings.p_value,
                                            reference_rate=round(ref["refusals"] / max(ref["answers"], 1), 4),
                                            window_rate=round(refused / max(len(answers), 1), 4))
    return tests
