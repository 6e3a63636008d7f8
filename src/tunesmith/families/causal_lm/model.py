"""Instruction / chat SFT of a causal LM: the model's own chat template, loss on assistant tokens, packing.

Packing is padding-free: every micro-batch is flattened into one row (transformers' DataCollatorWithFlattening)
whose position ids restart at 0 for each example. transformers' mask builder (masking_utils) reads those position
ids when no attention mask is given and builds a block-causal mask (sdpa / eager), and flash-attention gets the
sequence boundaries, so no example attends to another. The loss of an accumulated batch is divided by its number
of loss tokens (the Trainer's `num_items_in_batch`), so batch 1 x accumulation 8 equals batch 8 x accumulation 1.

Speed (docs/families/causal-lm.md): packed rows train with one causal attention call per conversation
(attention.py) instead of a block-diagonal mask over the whole row, and the LM head and its log-softmax run only at
the positions that carry loss: the collator adds a boolean `logits_to_keep` (transformers slices the hidden states
before the LM head) and `LossAtKeptPositions` takes the cross-entropy of exactly those positions, summed and divided
by the same `num_items_in_batch`, so the loss and its gradients equal the full-logits path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    DataCollatorWithFlattening,
)

from tunesmith.config import Config, MethodKind, TrainOn
from tunesmith.contracts import TrainerParts
from tunesmith.families.causal_lm.chat_template import IGNORE, TemplateError, encode_conversation, prompt_ids
from tunesmith.training.trainer import use_liger

LOSS_TOKENS = "loss_tokens"


def load_tokenizer(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False,
                   template: str | None = None):
    """The model's tokenizer with its chat template (or `template`), and a pad token for batched generation."""
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code)
    if template:
        tokenizer.chat_template = template
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError(f"{model_path}: the tokenizer has no chat template; set chat.template in the config "
                            "(a Jinja template as in tokenizer_config.json)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(model_path: str, labels: Sequence[str] = (), *, revision: str | None = None,
                trust_remote_code: bool = False, quantize_4bit: bool = False):
    """The causal LM as saved (labels are unused: the LM head is the task head); 4-bit NF4 for QLoRA."""
    extra: dict[str, Any] = {}
    if quantize_4bit:
        from transformers import BitsAndBytesConfig

        extra["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                          bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(model_path, revision=revision, trust_remote_code=trust_remote_code,
                                                 **extra)
    # With use_cache on, forward() builds a KV cache even in training, and transformers' mask builder then skips
    # the packed-sequence detection: packed examples would attend to each other. Saving turns it back on.
    model.config.use_cache = False
    return model


def tokenizer_for(cfg: Config):
    """The tokenizer of the weights training starts from (`model.init_from`, else `model.base`) with
    `cfg.chat.template` applied (what training and serving use)."""
    from tunesmith.hub import loading, start_weights

    resolved = start_weights(cfg)
    with loading(resolved, key="model.init_from" if cfg.model.init_from else "model.base"):
        return load_tokenizer(resolved.path, revision=resolved.revision, trust_remote_code=cfg.model.trust_remote_code,
                              template=cfg.chat.template)


def conversation_lengths(cfg: Config, messages: Sequence[list], tools: Sequence[list | None]) -> list[int]:
    """Tokens of each conversation in the model's chat template (EOS included), untruncated."""
    tokenizer = tokenizer_for(cfg)
    return [len(encode_conversation(tokenizer, m, t, train_on=TrainOn.ALL)["input_ids"])
            for m, t in zip(messages, tools, strict=True)]


def to_dataset(frame, tokenizer, max_length: int, train_on: TrainOn) -> Dataset:
    """input_ids / labels / length / loss_tokens per conversation (no padding: the collator flattens or pads)."""
    rows: dict[str, list] = {"input_ids": [], "labels": [], "length": [], LOSS_TOKENS: []}
    for messages, tools in zip(frame["messages"], frame["tools"], strict=True):
        enc = encode_conversation(tokenizer, messages, tools, max_length=max_length, train_on=train_on)
        rows["input_ids"].append(enc["input_ids"])
        rows["labels"].append(enc["labels"])
        rows["length"].append(len(enc["input_ids"]))
        rows[LOSS_TOKENS].append(sum(1 for x in enc["labels"][1:] if x != IGNORE))  # label 0 is never predicted
    return Dataset.from_dict(rows)


def collator(tokenizer, packing: bool, *, loss_positions_only: bool = False):
    """Padding-free flattening with per-example position ids (packing), else right-padding with IGNORE labels;
    with `loss_positions_only`, batches also carry the boolean `logits_to_keep` of KeepLossPositions."""
    if packing:
        inner = DataCollatorWithFlattening(return_tensors="pt")
    else:
        inner = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE, return_tensors="pt")
    return KeepLossPositions(inner) if loss_positions_only else inner


def loss_positions(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the positions whose next token carries loss (the only logits the loss reads)."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    return keep


class KeepLossPositions:
    """Wraps a collator: adds `logits_to_keep` = loss_positions(labels), so the model computes logits only there."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, features, return_tensors=None):
        batch = self.inner(features) if return_tensors is None else self.inner(features, return_tensors)
        batch["logits_to_keep"] = loss_positions(batch["labels"])
        return batch


class LossAtKeptPositions:
    """A `compute_loss_func` for logits computed at loss_positions(labels) only ((N, vocab), row-major order):
    cross-entropy summed and divided by the accumulated batch's loss tokens, as transformers' ForCausalLMLoss."""

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        shifted = labels[:, 1:]
        targets = shifted[shifted != IGNORE].to(logits.device)
        if logits.ndim != 2 or logits.shape[0] != targets.numel():
            raise ValueError(f"LossAtKeptPositions: {tuple(logits.shape)} logits for {targets.numel()} loss tokens; "
                             "the batch needs logits_to_keep from KeepLossPositions")
        loss = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        if num_items_in_batch is None:
            return loss / max(targets.numel(), 1)
        if isinstance(num_items_in_batch, torch.Tensor):
            num_items_in_batch = num_items_in_batch.to(loss.device)
        return loss / num_items_in_batch


def trainer_parts(cfg: Config, bundle, tokenizer) -> TrainerParts:
    max_len, train_on = cfg.model.max_length, cfg.chat.train_on
    train_ds = to_dataset(bundle.train, tokenizer, max_len, train_on)
    eval_ds = to_dataset(bundle.eval, tokenizer, max_len, train_on) if len(bundle.eval) else None
    empty = sum(1 for n in train_ds[LOSS_TOKENS] if n == 0)
    if empty == len(train_ds):
        raise TemplateError("no training conversation has a token that carries loss; check chat.train_on and "
                            "model.max_length (a prompt longer than max_length leaves its answer out)")
    cols = [LOSS_TOKENS]
    train_ds, eval_ds = train_ds.remove_columns(cols), eval_ds.remove_columns(cols) if eval_ds is not None else None
    # distillation reads the student's logits at every position (its own compute_loss): full logits there
    # and Liger's fused linear cross-entropy never materialises the logits at all (the model gets the labels)
    kept = MethodKind(cfg.method.kind) is not MethodKind.DISTILL and not use_liger(cfg.training.liger)
    return TrainerParts(train_ds, eval_ds,
                        data_collator=collator(tokenizer, cfg.training.packing, loss_positions_only=kept),
                        compute_loss_func=LossAtKeptPositions() if kept else None, packed=cfg.training.packing)


@torch.inference_mode()
def generate(model, tokenizer, conversations: Sequence[tuple[list, list | None]], *, max_new_tokens: int = 64,
             batch_size: int = 8) -> list[str]:
    """Greedy answers to each (messages, tools) prompt, rendered with the chat template exactly as in training."""
    model.eval()
    device = next(model.parameters()).device
    prompts = [prompt_ids(tokenizer, m, t) for m, t in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):  # left padding: every answer starts right after its prompt
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        new = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(new[row, width:], skip_special_tokens=True).strip()
    return out


@torch.inference_mode()
def example_losses(model, tokenizer, conversations: Sequence[tuple[list, list | None]], *, max_length: int,
                   train_on: TrainOn = TrainOn.ASSISTANT) -> tuple[list[float], list[int]]:
    """Summed loss and loss-token count of each conversation (teacher forcing), for held-out loss / perplexity."""
    model.eval()
    device = next(model.parameters()).device
    sums, counts = [], []
    for messages, tools in conversations:
        enc = encode_conversation(tokenizer, messages, tools, max_length=max_length, train_on=train_on)
        ids = torch.tensor([enc["input_ids"]], device=device)
        labels = torch.tensor([enc["labels"]], device=device)
        logits = model(input_ids=ids).logits[0, :-1].float()
        target = labels[0, 1:]
        loss = torch.nn.functional.cross_entropy(logits, target, ignore_index=IGNORE, reduction="sum")
        sums.append(float(loss))
        counts.append(int((target != IGNORE).sum()))
    return sums, counts
