"""causal-lm data: every chat format becomes `messages`; bad conversations and long ones are handled per row."""

from __future__ import annotations

import json

import pytest
from tests.toy_chat import make_chats, write_jsonl

from tunesmith.config import config_from_dict
from tunesmith.data import DataError, prepare_data
from tunesmith.families.causal_lm.rows import canonical_text

QA = [{"role": "user", "content": "hello how"}, {"role": "assistant", "content": "how hello"}]


def chat_cfg(path, model_dir, **data):
    return config_from_dict({"name": "c", "task": "causal-lm", "data": {"path": str(path), **data},
                             "model": {"base": model_dir, "max_length": 64}})


@pytest.mark.parametrize("row", [
    {"messages": QA},
    {"prompt": "hello how", "completion": "how hello"},
    {"instruction": "hello how", "input": "", "output": "how hello"},
    {"conversations": [{"from": "human", "value": "hello how"}, {"from": "gpt", "value": "how hello"}]},
])
def test_every_format_is_normalized_to_the_same_messages(row, tmp_path, tiny_chat_model_dir):
    rows = [row] * 1 + make_chats(40, seed=1)
    if "messages" not in row:  # one format per file: write the others in the same format as `row`
        rows = [row] + [_as(row, r["messages"]) for r in make_chats(40, seed=1)]
    bundle = prepare_data(chat_cfg(write_jsonl(tmp_path / "d.jsonl", rows), tiny_chat_model_dir), tmp_path)
    frames = [bundle.train, bundle.eval, bundle.test]
    first = next(f[f["_source"].str.endswith(":1")] for f in frames if f["_source"].str.endswith(":1").any())
    assert first["messages"].iloc[0] == QA
    assert first["text"].iloc[0] == canonical_text(QA)
    assert bundle.report.rows_used == 41 and bundle.labels == []


def _as(example: dict, messages: list[dict]) -> dict:
    q, a = messages[0]["content"], messages[1]["content"]
    if "prompt" in example:
        return {"prompt": q, "completion": a}
    if "instruction" in example:
        return {"instruction": q, "output": a}
    return {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}


def test_bad_conversations_are_quarantined_per_row_with_file_line(tmp_path, tiny_chat_model_dir):
    rows = make_chats(30, seed=2) + [
        {"messages": [{"role": "customer", "content": "hi"}, {"role": "assistant", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]},
        {"messages": [{"role": "user", "content": "hi"}]},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    bundle = prepare_data(chat_cfg(path, tiny_chat_model_dir), tmp_path)
    assert bundle.report.quarantined_by_reason == {"bad_conversation": 1, "empty_assistant": 1, "wrong_role": 1}
    records = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [f"{path}:31", f"{path}:32", f"{path}:33"]
    assert "role 'customer'" in records[0]["detail"]
    with pytest.raises(DataError, match=rf"{path}:31: .*role 'customer'"):
        prepare_data(chat_cfg(path, tiny_chat_model_dir, bad_rows="fail"))


@pytest.mark.parametrize("policy", ["drop", "truncate", "fail"])
def test_conversation_longer_than_max_length_follows_the_policy(policy, tmp_path, tiny_chat_model_dir):
    long = {"messages": [{"role": "user", "content": " ".join(["hello"] * 100)}, {"role": "assistant", "content": "yes"}]}
    path = write_jsonl(tmp_path / "d.jsonl", make_chats(30, seed=3) + [long])
    cfg = chat_cfg(path, tiny_chat_model_dir, too_long=policy)
    if policy == "fail":
        with pytest.raises(DataError, match=rf"{path}:31: the conversation is \d+ tokens .* model.max_length 64"):
            prepare_data(cfg, tmp_path)
        return
    report = prepare_data(cfg, tmp_path).report
    if policy == "drop":
        assert report.quarantined_by_reason == {"too_long": 1} and report.rows_used == 30
    else:
        assert report.truncated == 1 and report.rows_used == 31
        assert any(w.startswith(f"{path}:31: the conversation is") and "truncated to 64" in w for w in report.warnings)


def test_unknown_columns_name_the_formats(tmp_path, tiny_chat_model_dir):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "b"}] * 5)
    with pytest.raises(DataError, match="(?s)cannot tell the chat format.*data.chat_format"):
        prepare_data(chat_cfg(path, tiny_chat_model_dir))


def test_classification_is_unchanged_by_causal_lm_defaults(tiny_chat_model_dir):
    cfg = config_from_dict({"name": "c", "task": "causal-lm", "data": {"path": "x.jsonl"},
                            "model": {"base": tiny_chat_model_dir}})
    assert cfg.method.kind.value == "lora" and cfg.training.metric == "loss" and not cfg.data.split.stratify
    cls = config_from_dict({"name": "c", "data": {"path": "x.jsonl"}})
    assert cls.method.kind.value == "full" and cls.training.metric == "macro_f1" and cls.data.split.stratify


def test_pii_redact_rewrites_the_turns_causal_lm_trains_on(tmp_path, tiny_chat_model_dir):
    rows = make_chats(40, seed=2)
    rows[0] = {"messages": [{"role": "user", "content": "refund to bob.smith@example.com please"},
                            {"role": "assistant", "content": "card 4111 1111 1111 1111 is refunded"}]}
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    before = (tmp_path / "d.jsonl").read_bytes()
    cfg = chat_cfg(path, tiny_chat_model_dir, checks={"pii": {"policy": "redact", "presidio": "off"}})
    bundle = prepare_data(cfg, tmp_path)
    frame = next(f for f in (bundle.train, bundle.eval, bundle.test) if f["_source"].str.endswith(":1").any())
    row = frame[frame["_source"].str.endswith(":1")].iloc[0]
    turns = [m["content"] for m in row["messages"]]
    assert turns == ["refund to <EMAIL> please", "card <CREDIT_CARD> is refunded"]
    assert row["text"] == canonical_text(row["messages"]) and "example.com" not in row["text"]
    assert (tmp_path / "d.jsonl").read_bytes() == before  # the source is never touched
    assert bundle.report.checks["label_issues"]["status"] == "n/a"
