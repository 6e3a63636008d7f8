"""`tunesmith run` for causal-lm on a tiny Llama: LoRA SFT, base-vs-tuned generations, gates, registry, champion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration.test_cli_run import in_process, tunesmith
from tests.toy_chat import make_chats, write_jsonl

pytestmark = pytest.mark.integration

SUITE = """\
- name: refund-answer
  prompt: "refund please"
  require: ["refund"]
- name: no-shouting
  prompt: "weather"
  forbid_regex: ["[A-Z]{4,}"]
"""


def write_project(tmp_path: Path, model_dir: str) -> Path:
    rows = make_chats(160, seed=5)
    rows[3] = {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "hi"}]}  # a wrong role
    write_jsonl(tmp_path / "chats.jsonl", rows)
    (tmp_path / "suite.yaml").write_text(SUITE)
    cfg = {
        "name": "toy-chat", "task": "causal-lm",
        "data": {"path": "chats.jsonl", "split": {"eval": 0.1, "test": 0.15}},
        "model": {"base": model_dir, "max_length": 64},
        # r=16 at a moderate rate: a rank-8 adapter at 0.03 on this 32-dim random model lands near ROUGE-L 0 on
        # some splits (the tuned answers collapse to one word); this setting learns the four answers robustly
        "method": {"kind": "lora", "lora": {"r": 16, "alpha": 32}},
        "training": {"epochs": 6, "batch_size": 8, "learning_rate": 0.003, "early_stopping_patience": None},
        "evaluation": {"regression": "suite.yaml", "bootstrap": {"samples": 200}, "samples": 3},
        "chat": {"max_new_tokens": 12},
        "gates": ["uplift.rouge_l > 0.1", "regression_pass_rate >= 0.5", "vs_champion.rouge_l >= -0.5"],
    }
    (tmp_path / "config.yaml").write_text(json.dumps(cfg))
    return tmp_path / "config.yaml"


def test_chat_sft_run_registers_the_tuned_model_and_compares_with_the_champion(tmp_path, tiny_chat_model_dir):
    write_project(tmp_path, tiny_chat_model_dir)
    out = tunesmith("run", "config.yaml", cwd=tmp_path).stdout
    assert "gate decision: PASSED" in out and "registered toy-chat version 1" in out

    run = next((tmp_path / ".tunesmith/runs/toy-chat").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["uplift"]["rouge_l"]["delta"] > 0.1 and metrics["uplift"]["rouge_l"]["ci_low"] > 0
    assert metrics["tuned"]["loss"] < metrics["baseline"]["loss"]
    assert metrics["samples"][0]["reference"] and "tuned" in metrics["samples"][0]
    quarantine = (run / "quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == 1 and "chats.jsonl:4" in quarantine[0] and "wrong_role" in quarantine[0]
    html = (run / "report.html").read_text()
    assert "Sample answers" in html and "tuned answer" in html and "refund-answer" in html
    # the registered model: a merged, plain causal-LM dir with the chat template; the adapter beside it
    config = json.loads((run / "model/config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config.get("use_cache") is True
    assert (run / "model/chat_template.jinja").is_file() or "chat_template" in (run / "model/tokenizer_config.json").read_text()
    assert (run / "adapter/adapter_model.safetensors").is_file()

    in_process("models", "promote", "toy-chat", "--reason", "first champion", cwd=tmp_path)
    out = in_process("run", "config.yaml", cwd=tmp_path).stdout
    second = max((tmp_path / ".tunesmith/runs/toy-chat").iterdir())
    metrics = json.loads((second / "metrics.json").read_text())
    assert metrics["champion_status"] == "compared" and "rouge_l" in metrics["vs_champion"]
    assert "registered toy-chat version 2" in out
