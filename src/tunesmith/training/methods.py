"""Which parameters train: full fine-tuning, LoRA, frozen lower layers, or the head alone.

    model = apply_method(build_model(path, labels), cfg.method)

Every method works on any `AutoModelForSequenceClassification`: the base model is found through
`model.base_model`, the head is whatever sits beside it, and the encoder layers are the ModuleList
with `config.num_hidden_layers` entries.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from torch import nn

from tunesmith.config import MethodConfig, MethodKind


class MethodError(ValueError):
    """A method setting that does not fit the model (e.g. more layers to freeze than it has)."""


@dataclass(frozen=True)
class ParamCount:
    trainable: int
    total: int


def count_params(model: nn.Module) -> ParamCount:
    params = list(model.parameters())
    return ParamCount(trainable=sum(p.numel() for p in params if p.requires_grad), total=sum(p.numel() for p in params))


def apply_method(model: nn.Module, method: MethodConfig) -> nn.Module:
    """Freeze or wrap `model` for `method.kind`; returns the model to train (a PeftModel for LoRA)."""
    kind = MethodKind(method.kind)
    if kind is MethodKind.FULL:
        model.requires_grad_(True)
        return model
    if kind is MethodKind.HEAD:
        model.requires_grad_(True)
        _base(model).requires_grad_(False)
        return model
    if kind is MethodKind.FREEZE:
        return _freeze_lower(model, method.freeze.layers)
    if kind is MethodKind.LORA:
        return _wrap_lora(model, method)
    raise MethodError(f"method.kind: unknown method {kind!r}")  # pragma: no cover - the enum is closed


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level modules with parameters that are not the base model: the task head (`classifier`, `pre_classifier`, ...)."""
    base = _base(model)
    return [name for name, child in model.named_children() if child is not base and any(True for _ in child.parameters())]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of the base model: the ModuleList with one entry per hidden layer."""
    n_layers = getattr(model.config, "num_hidden_layers", None)
    lists = [m for m in _base(model).modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    matching = [m for m in lists if n_layers is None or len(m) == n_layers]
    if not matching:
        raise MethodError(
            f"cannot find the encoder layers of {type(model).__name__} (no ModuleList of {n_layers} blocks); "
            "use method.kind: full, lora or head for this model"
        )
    return matching[0]  # the outermost: modules() walks parents before children


def _base(model: nn.Module) -> nn.Module:
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        raise MethodError(f"{type(model).__name__} has no separate base model and head; cannot choose what to freeze")
    return base


def _embeddings(model: nn.Module) -> nn.Module:
    base = _base(model)
    for name in ("embeddings", "embed_tokens", "wte"):  # BERT-likes, Llama-likes, GPT-2-likes
        if isinstance(getattr(base, name, None), nn.Module):
            return getattr(base, name)
    return base.get_input_embeddings()


def _freeze_lower(model: nn.Module, n_layers: int) -> nn.Module:
    layers = encoder_layers(model)
    if n_layers > len(layers):
        raise MethodError(f"method.freeze.layers: {n_layers} is more than the {len(layers)} layers of the model")
    model.requires_grad_(True)
    _embeddings(model).requires_grad_(False)
    for layer in layers[:n_layers]:
        layer.requires_grad_(False)
    return model


def lora_target_modules(model: nn.Module, method: MethodConfig) -> list[str] | str:
    """The configured targets, else peft's table for this architecture, else every linear layer of the base."""
    if method.lora.target_modules:
        return list(method.lora.target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    return list(TABLE.get(getattr(model.config, "model_type", ""), [])) or "all-linear"


def _wrap_lora(model: nn.Module, method: MethodConfig) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=method.lora.r,
        lora_alpha=method.lora.alpha,
        lora_dropout=method.lora.dropout,
        target_modules=lora_target_modules(model, method),
        modules_to_save=head_module_names(model),  # the new head is trained and saved in full
    )
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`; harmless, and noisy on every
            # LoRA run. Drop this filter once peft reads `is_activation_checkpointing`.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, lora)
    except ValueError as err:
        raise MethodError(f"method.lora.target_modules: {err}; list module names of this model there") from None
