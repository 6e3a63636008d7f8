"""A chat model's privacy hooks (tunesmith.contracts.PrivacyHooks): canary rows and their likelihood, PII extraction
from the trained text's prefixes, and per-conversation losses for membership inference.

Everything is tokenized as training tokenized it (`encode_conversation`: the whole rendering at once), so a canary's
likelihood and an extraction prompt are the model's view of exactly what it was trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tunesmith.config import TrainOn
from tunesmith.data import pii
from tunesmith.data.schema import LABEL, TEXT
from tunesmith.encoders import to_inference_device
from tunesmith.families.causal_lm.chat_template import (
    IGNORE,
    assistant_spans,
    encode_conversation,
    encode_rendered,
)
from tunesmith.families.causal_lm.evaluate import load_lm
from tunesmith.families.causal_lm.model import example_losses
from tunesmith.families.causal_lm.rows import MESSAGES, TOOLS, canonical_text

_LOGIT_BUDGET = 1 << 26  # float32 logits scored per forward pass (256 MB): batch x length x vocab


def _canary_messages(text: str, cfg) -> list[dict]:
    return [{"role": "user", "content": cfg.evaluation.privacy.canaries.prompt}, {"role": "assistant", "content": text}]


def canary_row(text: str, cfg) -> dict:
    """A two-turn conversation whose answer is the canary sentence."""
    messages = _canary_messages(text, cfg)
    return {TEXT: canonical_text(messages), LABEL: "", MESSAGES: messages, TOOLS: None}


@torch.inference_mode()
def sequence_nll(model, encoded: Sequence[dict]) -> np.ndarray:
    """Summed negative log-likelihood (nats) of each encoded conversation's loss tokens, batched by length."""
    model.eval()
    device = to_inference_device(model)
    vocab = getattr(model.config, "vocab_size", None) or 65_536
    lengths = [len(e["input_ids"]) for e in encoded]
    order = np.argsort(lengths, kind="stable")
    out = np.zeros(len(encoded), dtype=np.float64)
    batch = max(1, min(512, _LOGIT_BUDGET // max(1, max(lengths, default=1) * vocab)))
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        width = max(len(encoded[i]["input_ids"]) for i in idx)
        ids = torch.zeros((len(idx), width), dtype=torch.long)
        labels = torch.full((len(idx), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):  # right padding: positions stay as in training
            n = len(encoded[i]["input_ids"])
            ids[row, :n], labels[row, :n], mask[row, :n] = (torch.tensor(encoded[i]["input_ids"]),
                                                             torch.tensor(encoded[i]["labels"]), 1)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
        target = labels[:, 1:].to(device)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE, reduction="none")
        out[idx] = loss.sum(dim=1).cpu().numpy()
    return out


_SLOT = "TUNESMITHCANARYSLOT"  # rendered once in place of the canary; each candidate is put where it stands


def encode_canaries(tokenizer, cfg, texts: Sequence[str]) -> list[dict]:
    """`encode_conversation` of the canary conversation with each text as its answer: the template rendered once,
    the texts put in its place, one batched tokenizer call (thousands of candidates per canary)."""
    settings = {"max_length": cfg.model.max_length, "train_on": cfg.chat.train_on}
    full, spans = assistant_spans(tokenizer, _canary_messages(_SLOT, cfg))
    at = full.find(_SLOT)
    if at < 0 or full.count(_SLOT) != 1:  # a template that rewrites the answer: render each one
        return [encode_conversation(tokenizer, _canary_messages(t, cfg), None, **settings) for t in texts]
    rendered = [full[:at] + t + full[at + len(_SLOT):] for t in texts]
    shifted = [[(a + (len(t) - len(_SLOT) if a > at else 0), b + (len(t) - len(_SLOT) if b > at else 0))
                for a, b in spans] for t in texts]
    batch = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    return [encode_rendered(tokenizer, r, s, enc={"input_ids": ids, "offset_mapping": off}, **settings)
            for r, s, ids, off in zip(rendered, shifted, batch["input_ids"], batch["offset_mapping"], strict=True)]


def canary_nll(cfg, model_dir: Path, texts: Sequence[str]) -> np.ndarray:
    """NLL of each canary sentence as the answer of the canary conversation, over the tokens `chat.train_on` trains."""
    model, tokenizer = load_lm(model_dir, cfg, "model_dir")
    return sequence_nll(model, encode_canaries(tokenizer, cfg, texts))


def row_losses(cfg, model_dir: Path, frame, _labels) -> np.ndarray:
    """Mean loss per trained token of each conversation (teacher forcing), for the membership attack."""
    model, tokenizer = load_lm(model_dir, cfg, "model_dir")
    to_inference_device(model)
    sums, counts = example_losses(model, tokenizer, list(zip(frame[MESSAGES], frame[TOOLS], strict=True)),
                                  max_length=cfg.model.max_length, train_on=cfg.chat.train_on)
    return np.array([s / c if c else np.nan for s, c in zip(sums, counts, strict=True)])


# --- extraction -------------------------------------------------------------------------------------------------


def _trained_spans(full: str, spans: list[tuple[int, int]], train_on: TrainOn) -> list[tuple[int, int]]:
    if train_on is TrainOn.ALL:
        return [(0, len(full))]
    return spans[-1:] if train_on is TrainOn.LAST_ASSISTANT else spans


def _norm(text: str) -> str:
    """Spacing, dashes, dots and brackets do not make a value different: +31 6-1234.5678 is +31 6 1234 5678."""
    return re.sub(r"[\s\-.()]", "", text).lower()


def pii_prompts(cfg, frame, tokenizer) -> list[dict]:
    """One prompt per distinct PII value in the trained tokens of the rows: the training tokens before the value."""
    types = [t for t in cfg.data.checks.pii.types if t != pii.PiiType.PERSON.value]  # regex detectors only
    limit = cfg.evaluation.privacy.extraction.max_prompts
    seen: set[str] = set()
    found = []
    sources = frame["_source"].astype(str).tolist() if "_source" in frame else [""] * len(frame)
    for messages, tools, source in zip(frame[MESSAGES], frame[TOOLS], sources, strict=True):
        full, spans = assistant_spans(tokenizer, messages, tools)
        trained = _trained_spans(full, spans, cfg.chat.train_on)
        hits = [f for f in pii.scan(full, types) if any(a <= f.start < b for a, b in trained)]
        if not hits:
            continue
        enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
        for f in hits:
            value = full[f.start:f.end]
            if _norm(value) in seen:
                continue
            seen.add(_norm(value))
            k = next(i for i, (_, end) in enumerate(enc["offset_mapping"]) if end > f.start)
            if k == 0:  # nothing before the value to prompt with
                continue
            size = sum(1 for a, b in enc["offset_mapping"] if a < f.end and b > f.start)
            found.append({"source": source, "type": f.type.value, "value": value, "ids": enc["input_ids"][:k],
                          "value_tokens": size})
            if len(found) == limit:
                return found
    return found


@torch.inference_mode()
def complete(model, tokenizer, prompts: Sequence[list[int]], new_tokens: Sequence[int], batch_size: int = 8) -> list[str]:
    """Greedy continuations of token-id prompts (left padded in batches of similar length)."""
    model.eval()
    device = to_inference_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i], dtype=torch.long)
            mask[row, width - len(prompts[i]):] = 1
        new = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max(new_tokens[i] for i in idx), pad_token_id=pad,
                             eos_token_id=tokenizer.eos_token_id)
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(new[row, width:], skip_special_tokens=True)
    return out


def extraction(cfg, frame, model_dirs: dict, settings) -> list[dict]:
    """Each model's greedy completion of every PII prompt; `extracted[name]`: the value is in it (spacing aside).

    Prompts come from the tuned model's tokenizer (the one training used); every model continues the same ids, so
    the base model must share that tokenizer, as a fine-tune of it does."""
    models = {name: load_lm(path, cfg, "model_dir" if name == "tuned" else "model.base")
              for name, path in model_dirs.items()}
    tokenizer = models["tuned"][1]
    prompts = pii_prompts(cfg, frame, tokenizer)
    attempts = [{"source": p["source"], "type": p["type"], "masked": pii.mask(p["value"]), "extracted": {}}
                for p in prompts]
    budget = [min(settings.max_new_tokens, p["value_tokens"] + 8) for p in prompts]
    for name, (model, tok) in models.items():
        completions = complete(model, tok, [p["ids"] for p in prompts], budget) if prompts else []
        for attempt, p, text in zip(attempts, prompts, completions, strict=True):
            attempt["extracted"][name] = _norm(p["value"]) in _norm(text)
    return attempts
