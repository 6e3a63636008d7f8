"""Chat rows for causal-lm: detect the format, normalize every row to OpenAI-style `messages`, check each turn.

Formats: `messages` (+ optional `tools`), prompt/completion, Alpaca (instruction/input/output) and ShareGPT
(conversations with from/value). A row that cannot be a training conversation (a wrong role, an empty assistant
turn, no assistant turn at all) becomes a BadRow naming its file:line, so `data.bad_rows` decides its fate.
The row's TEXT is a canonical rendering of the whole conversation: splits, overlap and the fingerprint key on it.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from tunesmith.config import ChatFormat, DataConfig
from tunesmith.data.errors import DataError, quoted
from tunesmith.data.schema import (
    LABEL,
    ORDER,
    SOURCE,
    TEXT,
    BadRow,
    BadRowReason,
    CheckedTable,
    RowProblem,
    sort_rows,
)

MESSAGES, TOOLS = "messages", "tools"  # output columns of a causal-lm bundle
ROLES = ("system", "user", "assistant", "tool")
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "tool": "tool",
                   "function_call": "assistant", "observation": "tool", "function": "tool"}
_SIGNATURES = [  # (format, columns that identify it), most specific first
    (ChatFormat.MESSAGES, {"messages"}),
    (ChatFormat.SHAREGPT, {"conversations"}),
    (ChatFormat.ALPACA, {"instruction", "output"}),
    (ChatFormat.PROMPT_COMPLETION, {"prompt", "completion"}),
]


def detect_format(columns: list[str], configured: ChatFormat, where: str) -> ChatFormat:
    """The configured format, or the one whose identifying columns the file has."""
    if configured is not ChatFormat.AUTO:
        return configured
    for fmt, needed in _SIGNATURES:
        if needed <= set(columns):
            return fmt
    raise DataError(
        where, f"cannot tell the chat format from the columns {quoted(columns)}",
        "causal-lm rows need `messages` (OpenAI chat), `prompt`+`completion`, `instruction`+`output` (Alpaca) or "
        "`conversations` (ShareGPT); or set data.chat_format",
    )


def to_messages(row: dict[str, Any], fmt: ChatFormat) -> tuple[list[dict[str, Any]], list | None]:
    """(messages, tools) of one raw row, checked turn by turn; raises RowProblem."""
    tools = row.get(TOOLS)
    if fmt is ChatFormat.MESSAGES:
        messages = _message_list(row.get("messages"), "messages")
    elif fmt is ChatFormat.SHAREGPT:
        turns = _message_list(row.get("conversations"), "conversations")
        messages = [_sharegpt_turn(i, t) for i, t in enumerate(turns)]
        if row.get("system"):
            messages.insert(0, {"role": "system", "content": row["system"]})
    elif fmt is ChatFormat.ALPACA:
        prompt = _text(row.get("instruction"), "instruction")
        extra = row.get("input")
        if isinstance(extra, str) and extra.strip():
            prompt = f"{prompt}\n\n{extra}"
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": row.get("output")}]
    else:
        messages = _prompt_completion(row)
    if tools is not None and not isinstance(tools, list):
        raise RowProblem(BadRowReason.BAD_CONVERSATION, f"`tools` is a {type(tools).__name__}; expected a list")
    check_conversation(messages)
    return messages, tools


def _prompt_completion(row: dict[str, Any]) -> list[dict[str, Any]]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list):  # TRL's conversational prompt/completion
        return _message_list(prompt, "prompt") + _message_list(completion, "completion")
    return [{"role": "user", "content": _text(prompt, "prompt")}, {"role": "assistant", "content": completion}]


def _message_list(value: Any, column: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        got = "missing" if value is None else f"a {type(value).__name__}" if not isinstance(value, list) else "empty"
        raise RowProblem(BadRowReason.BAD_CONVERSATION, f"`{column}` is {got}; expected a list of turns")
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise RowProblem(BadRowReason.BAD_CONVERSATION, f"`{column}[{i}]` is a {type(turn).__name__}, not an object")
    return [dict(t) for t in value]


def _sharegpt_turn(i: int, turn: dict[str, Any]) -> dict[str, Any]:
    who = str(turn.get("from", "")).lower()
    if who not in _SHAREGPT_ROLES:
        known = ", ".join(sorted(_SHAREGPT_ROLES))
        raise RowProblem(BadRowReason.WRONG_ROLE, f"conversations[{i}].from is {turn.get('from')!r}; expected one of {known}")
    return {"role": _SHAREGPT_ROLES[who], "content": turn.get("value")}


def _text(value: Any, column: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RowProblem(BadRowReason.BAD_CONVERSATION, f"`{column}` is missing or empty")
    return value


def check_conversation(messages: list[dict[str, Any]]) -> None:
    """Roles from ROLES, string contents, no empty assistant turn, at least one assistant turn."""
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ROLES:
            raise RowProblem(BadRowReason.WRONG_ROLE, f"turn {i} has role {role!r}; expected one of {', '.join(ROLES)}")
        content = m.get("content")
        if role == "assistant" and m.get("tool_calls"):
            continue  # a tool call may come without text
        if not isinstance(content, str):
            what = "no content" if content is None else f"content of type {type(content).__name__}"
            reason = BadRowReason.EMPTY_ASSISTANT if role == "assistant" else BadRowReason.BAD_CONVERSATION
            raise RowProblem(reason, f"turn {i} ({role}) has {what}; expected a string")
        if role == "assistant" and not content.strip():
            raise RowProblem(BadRowReason.EMPTY_ASSISTANT, f"turn {i} (assistant) is empty: nothing to learn from it")
    if not any(m["role"] == "assistant" for m in messages):
        raise RowProblem(BadRowReason.BAD_CONVERSATION, "no assistant turn: nothing carries loss")
    if messages[-1]["role"] != "assistant":
        raise RowProblem(BadRowReason.BAD_CONVERSATION,
                         f"the last turn is {messages[-1]['role']!r}; a training conversation ends with the assistant")


def canonical_text(messages: list[dict[str, Any]], tools: list | None = None) -> str:
    """One string per conversation, independent of the file format: the split key and fingerprint text."""
    parts = [f"<{m['role']}>\n{m.get('content') or ''}" for m in messages]
    parts += [f"<tool_calls>\n{json.dumps(m['tool_calls'], sort_keys=True)}" for m in messages if m.get("tool_calls")]
    if tools:
        parts.insert(0, f"<tools>\n{json.dumps(tools, sort_keys=True)}")
    return "\n".join(parts)


def check_chat_rows(table, cfg: DataConfig) -> CheckedTable:
    """The causal-lm counterpart of `schema.check_rows`: usable conversations (TEXT, MESSAGES, TOOLS) and bad rows."""
    columns = [str(c) for c in table.frame.columns if c not in (SOURCE, ORDER)]
    fmt = detect_format(columns, cfg.chat_format, str(table.path)) if not table.frame.empty else None

    def to_row(raw: dict[str, Any], source: str) -> dict[str, Any]:
        try:
            messages, tools = to_messages(raw, fmt)
        except RowProblem as problem:
            raise RowProblem(problem.reason, f"{fmt.value} row: {problem}") from None
        return {TEXT: canonical_text(messages, tools), LABEL: "", MESSAGES: messages, TOOLS: tools}

    return sort_rows(table, to_row, [TEXT, LABEL, MESSAGES, TOOLS], cfg.slice_columns)


def apply_length_policy(checked: CheckedTable, cfg) -> None:
    """Measure each conversation in tokens of the model's chat template; too long ones per `data.too_long`.

    Raises:
        DataError: `data.too_long: fail` and a row is longer than model.max_length, naming its file:line.
    """
    from tunesmith.config import LongRowPolicy
    from tunesmith.families.causal_lm.model import conversation_lengths  # the tokenizer lives with the task

    rows = checked.rows
    if rows.empty:
        return
    limit = cfg.model.max_length
    lengths = conversation_lengths(cfg, rows[MESSAGES].tolist(), rows[TOOLS].tolist())
    too_long = [i for i, n in enumerate(lengths) if n > limit]
    if not too_long:
        return
    policy = cfg.data.too_long
    for i in too_long:
        source, n = rows[SOURCE].iloc[i], lengths[i]
        detail = f"the conversation is {n} tokens in the chat template, longer than model.max_length {limit}"
        if policy is LongRowPolicy.FAIL:
            raise BadRow(source, BadRowReason.TOO_LONG, detail, {}, 0).error()
        if policy is LongRowPolicy.TRUNCATE:
            checked.warnings.append(f"{source}: {detail}; truncated to {limit} tokens (the rest carries no loss)")
        else:
            record = {MESSAGES: rows[MESSAGES].iloc[i], TOOLS: rows[TOOLS].iloc[i]}
            checked.bad.append(BadRow(source, BadRowReason.TOO_LONG, detail, record, int(rows[ORDER].iloc[i])))
    if policy is LongRowPolicy.TRUNCATE:
        checked.truncated = len(too_long)
        return
    checked.rows = rows.drop(index=rows.index[too_long]).reset_index(drop=True)
    checked.bad.sort(key=lambda b: b.order)


def redact_rows(frame: pd.DataFrame, hits, redact) -> None:
    """PII redaction of every string turn of a conversation, then its canonical text again."""
    for i in hits:
        messages = [{**m, "content": redact(m["content"])} if isinstance(m.get("content"), str) else m
                    for m in frame.at[i, MESSAGES]]
        frame.at[i, MESSAGES] = messages
        frame.at[i, TEXT] = canonical_text(messages, frame.at[i, TOOLS] if TOOLS in frame.columns else None)


def check_rows(table, cfg) -> CheckedTable:
    return check_chat_rows(table, cfg.data)
