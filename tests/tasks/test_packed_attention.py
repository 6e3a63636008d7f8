"""Chat SFT speed paths are the same math: per-document attention for packed rows equals SDPA with the
block-diagonal mask, and logits at the loss positions only give the full-logits loss and gradients."""

from __future__ import annotations

import pytest
import torch
from tests.toy_chat import make_chats
from transformers import LlamaConfig, LlamaForCausalLM

from tunesmith.config import config_from_dict
from tunesmith.families.causal_lm import model as causal_lm
from tunesmith.families.causal_lm.attention import PACKED_SDPA, document_bounds, use_packed_attention
from tunesmith.families.causal_lm.chat_template import encode_conversation
from tunesmith.training.trainer import TrainingError, use_liger


def _tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=101, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, attn_implementation="sdpa", use_cache=False)
    return LlamaForCausalLM(cfg).train()  # training mode; dropout is 0


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and a
    for name, g in a.items():
        torch.testing.assert_close(b[name], g, rtol=1e-5, atol=1e-5, msg=name)


def test_per_document_attention_equals_sdpa_with_the_block_mask():
    model = _tiny_llama()
    lengths = [5, 17, 1, 9, 30]
    ids = torch.randint(0, 101, (1, sum(lengths)))
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    assert document_bounds(pos, pos.shape[1]) == [[(0, 5), (5, 22), (22, 23), (23, 32), (32, 62)]]
    assert document_bounds(torch.arange(7)[None], 7) is None  # one document: plain causal attention is exact
    weight = torch.randn(1, sum(lengths), 101)  # a loss that reads every logit

    def run():
        logits = model(input_ids=ids, position_ids=pos).logits
        (logits * weight).sum().backward()
        return logits.detach(), _grads(model)

    assert model.config._attn_implementation == "sdpa"  # transformers builds the block-diagonal mask from pos
    masked, masked_grads = run()
    assert use_packed_attention(model) == PACKED_SDPA
    split, split_grads = run()
    torch.testing.assert_close(split, masked, rtol=1e-5, atol=1e-5)
    _assert_same(masked_grads, split_grads)
    offset = 0
    with torch.no_grad():  # and each document alone gives the same logits: nothing leaks between documents
        for n in lengths:
            alone = model(input_ids=ids[:, offset:offset + n]).logits
            torch.testing.assert_close(split[:, offset:offset + n], alone, rtol=1e-5, atol=1e-5)
            offset += n

    # Padded batches and cached generation take transformers' sdpa path: the same answers as before the switch.
    padded = torch.randint(3, 101, (2, 12))
    mask = torch.ones_like(padded)
    mask[1, :4] = 0  # left padding
    reference = _tiny_llama()
    model.eval(), reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=padded, attention_mask=mask).logits[mask.bool()],
                                   reference(input_ids=padded, attention_mask=mask).logits[mask.bool()],
                                   rtol=1e-5, atol=1e-5)
    model.config.use_cache = reference.config.use_cache = True
    kwargs = {"attention_mask": mask, "max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(model.generate(input_ids=padded, **kwargs), reference.generate(input_ids=padded, **kwargs))


@pytest.mark.parametrize("packing", [True, False])
def test_logits_at_loss_positions_give_the_full_loss_and_gradients(tiny_chat_model_dir, packing):
    tokenizer = causal_lm.load_tokenizer(tiny_chat_model_dir)
    model = causal_lm.build_model(tiny_chat_model_dir).train()
    if packing:
        use_packed_attention(model)
    encs = [encode_conversation(tokenizer, r["messages"]) for r in make_chats(6, seed=5)]
    full = causal_lm.collator(tokenizer, packing)(encs)
    kept = causal_lm.collator(tokenizer, packing, loss_positions_only=True)(encs)
    n_items = (full["labels"][:, 1:] != -100).sum() + 3  # as the Trainer's accumulated count: not this batch's
    loss_full = model(**full, num_items_in_batch=n_items).loss  # transformers' ForCausalLMLoss over every logit
    loss_full.backward()
    grads_full = _grads(model)
    labels = kept.pop("labels")
    outputs = model(**kept)
    assert outputs.logits.shape == (int((labels[:, 1:] != -100).sum()), model.config.vocab_size)
    loss_kept = causal_lm.LossAtKeptPositions()(outputs, labels, num_items_in_batch=n_items)
    loss_kept.backward()
    torch.testing.assert_close(loss_kept, loss_full, rtol=1e-6, atol=1e-6)
    _assert_same(grads_full, _grads(model))
    with pytest.raises(ValueError, match="logits_to_keep"):  # full logits handed to it by mistake: refused
        causal_lm.LossAtKeptPositions()(model(input_ids=full["input_ids"]), full["labels"])


def test_liger_setting_is_checked_with_its_key(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert use_liger("auto") is False and use_liger(False) is False
    with pytest.raises(TrainingError, match=r"training.liger: true needs a CUDA GPU.*tunesmith\[gpu\]"):
        use_liger(True)
    with pytest.raises(ValueError, match="training.liger"):
        config_from_dict({"name": "x", "task": "causal-lm", "data": {"path": "x.jsonl"}, "model": {"base": "m"},
                          "training": {"liger": "sometimes"}})


def test_bf16_math_mode_only_with_amx_and_only_while_training(monkeypatch):
    from tunesmith.training import trainer as training

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(training, "cpu_has_amx", lambda: False)
    with pytest.raises(TrainingError, match="training.precision: bf16_math .*amx_bf16"):
        training.resolve_precision("bf16_math")
    monkeypatch.setattr(training, "cpu_has_amx", lambda: True)
    assert training.resolve_precision("bf16_math") == "bf16_math"
    before = torch.backends.mkldnn.matmul.fp32_precision
    with training.matmul_math("bf16_math"):
        assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    with training.matmul_math("bf16"):  # autocast's precision leaves oneDNN's fp32 math alone
        assert torch.backends.mkldnn.matmul.fp32_precision == before
    assert torch.backends.mkldnn.matmul.fp32_precision == before


def test_rows_of_a_token_budget_hold_every_conversation_once(tiny_chat_model_dir, tmp_path):
    import pandas as pd

    from tunesmith.training.sampling import TokenBudgetBatchSampler, first_fit_decreasing
    from tunesmith.training.trainer import build_trainer

    assert first_fit_decreasing([5, 9, 3, 7, 12, 4], 12) == [[4], [1, 2], [3, 0], [5]]
    sampler = TokenBudgetBatchSampler([5, 9, 3, 7, 12, 4], 12, seed=1)
    first = list(sampler)
    assert sorted(i for b in first for i in b) == list(range(6)) and list(sampler) == first  # seeded
    sampler.set_epoch(1)
    assert sorted(map(sorted, sampler)) == sorted(map(sorted, first))  # same bins, another order
    rows = make_chats(24, seed=2)
    frame = pd.DataFrame({"text": [str(r["messages"]) for r in rows], "label": "",
                          "messages": [r["messages"] for r in rows], "tools": [None] * len(rows)})
    base = {"name": "c", "task": "causal-lm", "data": {"path": "x.jsonl"}, "model": {"base": tiny_chat_model_dir},
            "training": {"pack_tokens": 96, "precision": "fp32", "early_stopping_patience": None}}
    cfg = config_from_dict(base)
    tokenizer = causal_lm.load_tokenizer(tiny_chat_model_dir)
    parts = causal_lm.trainer_parts(cfg, type("B", (), {"train": frame, "eval": frame.iloc[:0]})(), tokenizer)
    trainer = build_trainer(cfg, causal_lm.build_model(tiny_chat_model_dir), tokenizer, parts.train_ds, None,
                            str(tmp_path), "fp32", data_collator=parts.data_collator, compute_metrics=None,
                            compute_loss_func=parts.compute_loss_func, packed=True, token_budget=cfg.training.pack_tokens)
    batches = list(trainer.get_train_dataloader())
    widths = [b["input_ids"].shape[1] for b in batches]
    assert max(widths) <= 96 and sum(widths) == sum(parts.train_ds["length"]) and len(batches) < 24
    assert all(b["input_ids"].shape[0] == 1 and "logits_to_keep" in b for b in batches)
    with pytest.raises(ValueError, match="training.pack_tokens.*packing: true"):
        config_from_dict({**base, "training": {"pack_tokens": 96, "packing": False}})
