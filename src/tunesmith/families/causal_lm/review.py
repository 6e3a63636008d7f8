"""Reviewing chat answers: the conversation and the model's answer; the reviewer accepts, rejects or rewrites it."""

from __future__ import annotations

from tunesmith.families.causal_lm.drift import last_user_turn


def items(rows: list[dict], _labels) -> list[dict]:
    """Each served chat answer; uncertainty from what came back and how it ended: a thumbs-down (most wanted: a
    rewrite makes it a training row) 1.0, a cut-off answer 0.8, no feedback 0.5, a thumbs-up 0.1."""
    out = []
    for i, row in enumerate(rows):
        messages, answer = row["input"], row["output"]
        if not isinstance(messages, list) or not isinstance(answer, dict) or "text" not in answer:
            continue  # a /v1/completions prompt is not a conversation to train on
        thumbs = (row.get("feedback") or {}).get("thumbs") if isinstance(row.get("feedback"), dict) else None
        u = {"down": 1.0, "up": 0.1}.get(thumbs, 0.8 if answer.get("finish_reason") == "length" else 0.5)
        out.append({"index": i, "text": last_user_turn(messages), "guess": {"thumbs": "up"}, "uncertainty": u,
                    "context": {"messages": messages, "answer": str(answer["text"]), "thumbs": thumbs}})
    return out


def agree(a, b) -> float:
    """Agreement on accept vs reject (a rewrite is a reject of the answer as it was)."""
    return float(a.get("thumbs") == b.get("thumbs"))
