"""causal-lm training semantics: loss masks, packing isolation, token-normalized accumulation, LoRA merge."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pytest
import torch
from tests.toy_chat import make_chats
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from tunesmith.config import TrainOn, config_from_dict
from tunesmith.families.causal_lm import model as causal_lm
from tunesmith.families.causal_lm.attention import PACKED_SDPA, register, use_packed_attention
from tunesmith.families.causal_lm.chat_template import IGNORE, TemplateError, encode_conversation
from tunesmith.training import train
from tunesmith.training.methods import apply_method
from tunesmith.training.trainer import build_trainer

CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello how"},
    {"role": "assistant", "content": "how hello"},
    {"role": "user", "content": "what time"},
    {"role": "assistant", "content": "noon"},
]


@dataclass
class ChatBundle:
    train: pd.DataFrame
    eval: pd.DataFrame
    test: pd.DataFrame
    labels: list[str] = field(default_factory=list)
    fingerprint: str = "test"


def chat_bundle(n_train=32, n_eval=8, seed=0) -> ChatBundle:
    rows = make_chats(n_train + 2 * n_eval, seed=seed)
    df = pd.DataFrame({"text": [str(r["messages"]) for r in rows], "label": "",
                       "messages": [r["messages"] for r in rows], "tools": [None] * len(rows)})
    return ChatBundle(df[:n_train], df[n_train:n_train + n_eval], df[n_train + n_eval:])


def chat_config(model_dir, method="lora", **training):
    base = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-2, "precision": "fp32", "num_threads": 1,
            "early_stopping_patience": None, "warmup_ratio": 0.0, "weight_decay": 0.0, "group_by_length": False}
    return config_from_dict({
        "name": "chat", "task": "causal-lm", "data": {"path": "unused.jsonl"},
        "model": {"base": model_dir, "max_length": 64},
        "method": {"kind": method, "freeze": {"layers": 1}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "training": {**base, **training},
    })


@pytest.fixture(scope="module")
def tokenizer(tiny_chat_model_dir):
    return causal_lm.load_tokenizer(tiny_chat_model_dir)


def _loss_text(tokenizer, enc) -> str:
    return tokenizer.decode([t for t in enc["labels"] if t != IGNORE])


def test_loss_falls_exactly_on_the_assistant_turns(tokenizer):
    enc = encode_conversation(tokenizer, CONVERSATION, train_on=TrainOn.ASSISTANT)
    assert _loss_text(tokenizer, enc) == "how hello</s>\nnoon</s>\n"
    prompt_tokens = [t for t, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab == IGNORE]
    assert "be brief" in tokenizer.decode(prompt_tokens) and "how hello" not in tokenizer.decode(prompt_tokens)
    last = encode_conversation(tokenizer, CONVERSATION, train_on=TrainOn.LAST_ASSISTANT)
    assert _loss_text(tokenizer, last) == "noon</s>\n"
    everything = encode_conversation(tokenizer, CONVERSATION, train_on=TrainOn.ALL)
    assert everything["labels"] == everything["input_ids"]


def test_template_that_rewrites_history_is_refused(tokenizer):
    tok = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    # renders only the last two turns: earlier prefixes are not prefixes of the whole
    tok.chat_template = "{% for m in messages[-2:] %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    with pytest.raises(TemplateError, match="prefix"):
        encode_conversation(tok, CONVERSATION)


@pytest.mark.parametrize("attn", ["sdpa", "eager", PACKED_SDPA])
def test_packed_example_has_the_same_loss_as_alone(tiny_chat_model_dir, tokenizer, attn):
    model = causal_lm.build_model(tiny_chat_model_dir)  # as training loads it (use_cache off)
    model.set_attn_implementation(register() if attn == PACKED_SDPA else attn)
    model.train()  # training mode, where isolation matters (dropout is 0 in this config)
    encs = [encode_conversation(tokenizer, r["messages"]) for r in make_chats(4, seed=3)]
    collate = causal_lm.collator(tokenizer, packing=True)

    def token_losses(batch):
        with torch.no_grad():
            logits = model(**batch).logits[0, :-1]
        labels = batch["labels"][0, 1:]
        return torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none")

    packed = token_losses(collate(encs))
    offset = 0
    for enc in encs:
        alone = token_losses(collate([enc]))
        n = len(enc["input_ids"])
        torch.testing.assert_close(packed[offset:offset + n - 1], alone, rtol=1e-5, atol=1e-6)
        offset += n
    # the loss-free separator: the last token of an example never predicts the next example's first token
    assert packed[offset - encs[-1]["input_ids"].__len__() - 1] == 0


class StepSnapshot(TrainerCallback):
    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _one_step(model_dir, bundle, tmp_path, *, batch_size, grad_accum, packing):
    cfg = chat_config(model_dir, "full", batch_size=batch_size, grad_accum=grad_accum, max_steps=1, packing=packing)
    tokenizer = causal_lm.load_tokenizer(model_dir)
    torch.manual_seed(0)
    model = causal_lm.build_model(model_dir)
    if packing:  # as training sets it up: one attention call per conversation in the packed row
        assert use_packed_attention(model) == PACKED_SDPA
    model = apply_method(model, cfg.method)
    parts = causal_lm.trainer_parts(cfg, bundle, tokenizer)
    snap = StepSnapshot()
    trainer = build_trainer(cfg, model, tokenizer, parts.train_ds, None, str(tmp_path), "fp32", [snap],
                            data_collator=parts.data_collator, compute_metrics=None,
                            compute_loss_func=parts.compute_loss_func)
    trainer.args.optim = "sgd"  # plain SGD: the update is the gradient itself, so any loss scaling would show
    trainer.args.max_grad_norm = 1e9
    out = trainer.train()
    return out.training_loss, snap.after


@pytest.mark.parametrize("packing", [True, False])
def test_batch_1_x_accum_8_equals_batch_8_x_accum_1(tiny_chat_model_dir, tmp_path, packing):
    bundle = chat_bundle(n_train=8, n_eval=0)
    loss_a, weights_a = _one_step(tiny_chat_model_dir, bundle, tmp_path / "a", batch_size=8, grad_accum=1,
                                  packing=packing)
    loss_b, weights_b = _one_step(tiny_chat_model_dir, bundle, tmp_path / "b", batch_size=1, grad_accum=8,
                                  packing=packing)
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for name, w in weights_a.items():
        torch.testing.assert_close(w, weights_b[name], rtol=1e-5, atol=1e-7, msg=name)


class ParamSnapshot(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.trainable = {n for n, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method", ["lora", "freeze"])
def test_only_trainable_parameters_change(tiny_chat_model_dir, tmp_path, method):
    snap = ParamSnapshot()
    result = train(chat_config(tiny_chat_model_dir, method, max_steps=3), chat_bundle(), tmp_path / "run",
                   callbacks=[snap])
    if method == "lora":  # llama-style: every block linear gets an adapter; the (tied) LM head does not
        targets = {n.split(".")[-4] for n in snap.trainable}  # ...q_proj.lora_A.default.weight
        assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
        assert all("lora_" in n for n in snap.trainable)
    else:
        assert not any("embed_tokens" in n or ".layers.0." in n for n in snap.trainable)
        assert any(".layers.1." in n for n in snap.trainable)
    for name, before in snap.before.items():
        if name in snap.trainable:
            assert not torch.equal(before, snap.after[name]), f"trainable {name} did not change"
        else:
            assert torch.equal(before, snap.after[name]), f"frozen {name} changed"
    assert (result.model_dir / "model.safetensors").is_file()
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file() == (method == "lora")


def test_merged_model_logits_equal_base_plus_adapter(tiny_chat_model_dir, tmp_path):
    from peft import PeftModel

    result = train(chat_config(tiny_chat_model_dir, "lora", max_steps=3), chat_bundle(), tmp_path / "run")
    base = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)
    with_adapter = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapter")).eval()
    merged = AutoModelForCausalLM.from_pretrained(result.model_dir).eval()
    assert type(merged).__name__ == "LlamaForCausalLM"
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    assert tokenizer.chat_template  # serving renders prompts with the template training used
    ids = torch.tensor([encode_conversation(tokenizer, CONVERSATION)["input_ids"]])
    with torch.no_grad():
        a, b = with_adapter(input_ids=ids).logits, merged(input_ids=ids).logits
        plain = AutoModelForCausalLM.from_pretrained(tiny_chat_model_dir)(input_ids=ids).logits
    assert not torch.allclose(a, plain, atol=1e-4)  # the adapter is not empty
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_qlora_without_cuda_says_what_to_do(tiny_chat_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same answer on a GPU machine
    from tunesmith.training import MethodError

    with pytest.raises(MethodError, match="qlora needs bitsandbytes and a CUDA GPU.*method.kind: lora"):
        train(chat_config(tiny_chat_model_dir, "qlora", max_steps=1), chat_bundle(), tmp_path / "run")
