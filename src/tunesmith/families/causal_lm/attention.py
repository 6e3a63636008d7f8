"""Attention for packed rows: one causal SDPA call per document instead of one masked call over the whole row.

A packed row holds several conversations whose position ids restart at 0. transformers' sdpa path turns the resets
into a dense block-diagonal (T x T) mask, and torch's CPU flash kernel skips blocks only for `is_causal`, never for
a mask: the row costs T^2 although the documents need sum(t_i^2) (16 conversations of ~70 tokens: ~27x less).
`packed_sdpa` splits the row at the position resets and calls `scaled_dot_product_attention(is_causal=True)` on
each document, which is the same math (tests/tasks/test_packed_attention.py: outputs and gradients equal SDPA with
the block mask). It is registered under PACKED_SDPA in transformers' AttentionInterface together with a mask
function that builds no mask when there is nothing to mask but the documents (the usual case for a flattened
row); whenever a padding mask, a KV cache or unequal query/key lengths are involved, both fall back to transformers'
own sdpa mask and kernel, so generation and padded batches behave exactly as with `sdpa`.

`attention_for_training` picks the implementation a chat model trains with: flash_attention_2 on CUDA where the
flash-attn package is installed (variable-length kernel driven by the same position ids), else PACKED_SDPA for
models whose attention is plain full causal attention (no sliding window, no soft-capping), else the model's own.
The choice lives on `config._attn_implementation`, which save_pretrained does not write: saved models load with
their defaults.
"""

from __future__ import annotations

import contextlib
import importlib.util

import torch
from torch.nn import functional as F  # noqa: N812

PACKED_SDPA = "tunesmith_packed_sdpa"
FLASH = "flash_attention_2"


def document_bounds(position_ids: torch.Tensor | None, length: int) -> list[list[tuple[int, int]]] | None:
    """[(start, end) of each document] per batch row, from position resets (a position that is not previous + 1);
    None when no row holds more than one document (plain causal attention is then exact)."""
    if position_ids is None:
        return None
    pos = position_ids.reshape(-1, position_ids.shape[-1])
    if pos.shape[-1] != length:
        return None
    resets = torch.ones_like(pos, dtype=torch.bool)
    resets[:, 1:] = pos[:, 1:] != pos[:, :-1] + 1
    if not bool(resets[:, 1:].any()):
        return None
    rows = []
    for row in resets:
        starts = row.nonzero().flatten().tolist() + [length]
        rows.append(list(zip(starts[:-1], starts[1:], strict=True)))
    return rows


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                is_causal: bool | None = None, **kwargs):
    """transformers' attention-function signature: (B, H, T, D) query, (B, Hkv, T, D) key/value -> (B, T, H, D)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    same_length = query.shape[2] == key.shape[2]
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    bounds = document_bounds(kwargs.get("position_ids"), query.shape[2]) \
        if attention_mask is None and same_length and causal else None
    if bounds is None or kwargs.get("output_attentions"):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    gqa = getattr(module, "num_key_value_groups", 1) > 1
    # CPU: torch's flash kernel in bf16 carries a fixed cost per call that many short documents do not repay
    # (measured: fp32 per-document calls beat bf16 ones); fp32 math is also the more exact of the two.
    upcast = query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16)
    rows = []
    with torch.autocast("cpu", enabled=False) if upcast else contextlib.nullcontext():  # autocast would recast
        for b, docs in enumerate(bounds):
            q, k, v = query[b : b + 1], key[b : b + 1], value[b : b + 1]
            if upcast:
                q, k, v = q.float(), k.float(), v.float()
            parts = [F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], dropout_p=dropout,
                                                    scale=scaling, is_causal=True, enable_gqa=gqa) for s, e in docs]
            rows.append(torch.cat(parts, dim=2) if len(parts) > 1 else parts[0])
    out = torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]
    return out.to(query.dtype).transpose(1, 2).contiguous(), None


def packed_mask(*args, **kwargs):
    """The mask for PACKED_SDPA: none when only causality and document boundaries apply (packed_sdpa reads the
    boundaries from the position ids), else transformers' sdpa mask."""
    from transformers.masking_utils import sdpa_mask

    plain = (kwargs.get("attention_mask") is None and not args and kwargs.get("q_length") == kwargs.get("kv_length")
             and not _nonzero(kwargs.get("q_offset")) and not _nonzero(kwargs.get("kv_offset")))
    return None if plain else sdpa_mask(*args, **kwargs)


def _nonzero(offset) -> bool:
    return bool(offset) if not isinstance(offset, torch.Tensor) else bool((offset != 0).any())


def register() -> str:
    """Register PACKED_SDPA with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa)
    AttentionMaskInterface.register(PACKED_SDPA, packed_mask)
    return PACKED_SDPA


def flash_attention_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None


def plain_causal(config) -> bool:
    """Full causal attention in every layer: no sliding window, no logit soft-capping, no chunked attention."""
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return False
    if any(t != "full_attention" for t in (getattr(config, "layer_types", None) or [])):
        return False
    return not (getattr(config, "attn_logit_softcapping", None) or getattr(config, "attention_chunk_size", None))


def attention_for_training(model) -> str | None:
    """The attention implementation packed training uses for `model` (None: keep the model's own)."""
    config = model.config
    current = getattr(config, "_attn_implementation", None)
    if flash_attention_available() and getattr(model, "_supports_flash_attn", False):
        return FLASH
    if current == "sdpa" and plain_causal(config):
        return register()
    return None


def use_packed_attention(model) -> str:
    """Switch `model` to the packed-training attention; returns the implementation it now uses."""
    choice = attention_for_training(model)
    if choice is not None and choice != model.config._attn_implementation:
        model.set_attn_implementation(choice)
    return model.config._attn_implementation
