"""Which parameters train: full fine-tuning, LoRA, frozen lower layers, or the head alone.

    model = apply_method(build_model(path, labels), cfg.method)

Every method works on any `AutoModelForSequenceClassification`: the base model is found through
`model.base_model`, the head is whatever sits beside it, and the encoder layers are the ModuleList
with `config.num_hidden_layers` entries.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
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
        return freeze_lower(model, method.freeze.layers)
    if kind in (MethodKind.LORA, MethodKind.QLORA):
        if kind is MethodKind.QLORA:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model)
        return _wrap_lora(model, method)
    raise MethodError(f"method.kind: unknown method {kind!r}")  # pragma: no cover - the enum is closed


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level modules with parameters that are not the base model: the task head (`classifier`, `pre_classifier`, ...)."""
    base = _base(model)
    return [name for name, child in model.named_children() if child is not base and any(True for _ in child.parameters())]


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of the base model: the ModuleList with one entry per hidden layer."""
    n_layers = getattr(model.config, "num_hidden_layers", None)
    lists = [m for m in _body(model).modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
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


def _body(model: nn.Module) -> nn.Module:
    """The base model under a task head, or the model itself when it has no head (an embedding backbone)."""
    base = getattr(model, "base_model", None)
    return model if base is None else base


def _embeddings(model: nn.Module) -> nn.Module:
    base = _body(model)
    for name in ("embeddings", "embed_tokens", "wte"):  # BERT-likes, Llama-likes, GPT-2-likes
        if isinstance(getattr(base, name, None), nn.Module):
            return getattr(base, name)
    return base.get_input_embeddings()


def freeze_lower(model: nn.Module, n_layers: int, *, keep_one: bool = False) -> nn.Module:
    """method.kind freeze: the embeddings (the whole module: word, position, norm) and the first `n_layers` blocks
    stop training; the rest and the head train. `keep_one`: a model with no head must keep a block training."""
    layers = encoder_layers(model)
    if n_layers > len(layers):
        raise MethodError(f"method.freeze.layers: {n_layers} is more than the {len(layers)} layers of the model")
    if keep_one and n_layers >= len(layers):
        raise MethodError(f"method.freeze.layers: {n_layers} would freeze all {len(layers)} layers of the model; an "
                          f"embedding model has no head to train, so freeze at most {len(layers) - 1}")
    model.requires_grad_(True)
    _embeddings(model).requires_grad_(False)
    for layer in layers[:n_layers]:
        layer.requires_grad_(False)
    return model


def is_causal_lm(model: nn.Module) -> bool:
    """A model whose head is its own LM head (e.g. LlamaForCausalLM): nothing new to train or save in full."""
    return type(model).__name__.endswith("ForCausalLM")


def check_method_available(kind: MethodKind) -> None:
    """QLoRA needs bitsandbytes and a CUDA GPU; say so before any model is loaded."""
    if kind is not MethodKind.QLORA:
        return
    import importlib.util

    import torch

    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        missing = "bitsandbytes is not installed" if importlib.util.find_spec("bitsandbytes") is None else "no CUDA GPU"
        raise MethodError(f"method.kind: qlora needs bitsandbytes and a CUDA GPU ({missing}); use method.kind: lora "
                          "(same adapter, full-precision base), or pip install bitsandbytes on a GPU machine")


def lora_target_modules(model: nn.Module, method: MethodConfig) -> list[str] | str:
    """The configured targets, else peft's table for this architecture, else every linear layer of the base.

    A causal LM gets every linear layer of its blocks (llama-style: q/k/v/o/gate/up/down; peft leaves the LM head
    out of "all-linear"), which is what QLoRA and most SFT recipes use.
    """
    if method.lora.target_modules:
        return list(method.lora.target_modules)
    if is_causal_lm(model):
        return "all-linear"
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    return list(TABLE.get(getattr(model.config, "model_type", ""), [])) or "all-linear"


def inject_lora(hf: nn.Module, method: MethodConfig, *, task_type: str, train_heads: Sequence[str] = ()) -> None:
    """LoRA layers put into `hf` in place with peft (no PeftModel wrapper, no transformers PEFT integration, whose
    minimum peft version moves with every transformers release): the base is frozen, the adapter and the named head
    modules (a cross-encoder's new classifier) train. `save_injected_adapter` writes it, `merge_injected_lora` folds it.
    """
    from peft import LoraConfig, inject_adapter_in_model

    lora = LoraConfig(task_type=task_type, r=method.lora.r, lora_alpha=method.lora.alpha,
                      lora_dropout=method.lora.dropout, target_modules=lora_target_modules(hf, method),
                      modules_to_save=list(train_heads) or None)
    try:
        inject_adapter_in_model(lora, hf)  # heads become peft ModulesToSaveWrappers: a trained copy, saved with it
    except ValueError as err:
        raise MethodError(f"method.lora.target_modules: {err}; list module names of this model there") from None


def save_injected_adapter(hf: nn.Module, out_dir) -> None:
    """The adapter alone as peft writes one (adapter_config.json + adapter_model.safetensors), loadable with peft."""
    from pathlib import Path

    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = hf.peft_config["default"]
    config.base_model_name_or_path = getattr(hf.config, "_name_or_path", None) or None
    config.save_pretrained(str(out))
    # keys as a PeftModel names them, so `PeftModel.from_pretrained(base, dir)` loads the file
    state = {f"base_model.model.{k}": v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(hf).items()}
    save_file(state, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})


def load_injected_checkpoints(trainer, hf: nn.Module) -> None:
    """Make a sentence-transformers trainer load its own checkpoints (the best one at the end, or one to resume from)
    back into the injected model. Its loader rebuilds the model from the checkpoint dir without the adapter and then
    fails on the key names (and only logs it), which would silently keep the last step instead of the best one."""
    from pathlib import Path

    from safetensors.torch import load_file

    def load(checkpoint_path: str) -> None:
        files = sorted(Path(checkpoint_path).glob("model*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{checkpoint_path}: no model*.safetensors in the checkpoint")
        state = {k: v for f in files for k, v in load_file(str(f)).items()}
        missing, unexpected = hf.load_state_dict(state, strict=False)
        lost = [k for k in missing if "lora_" in k or "modules_to_save" in k]
        if unexpected or lost:
            raise RuntimeError(f"{checkpoint_path}: checkpoint does not match the LoRA model "
                               f"(unexpected {unexpected[:3]}, missing {lost[:3]})")
        hf.tie_weights()

    trainer._load_from_checkpoint = load  # the trainer's one hook for both uses


def merge_injected_lora(hf: nn.Module) -> None:
    """Fold injected LoRA layers into the base weights and drop them (and peft's bookkeeping): the saved model needs no
    peft. Head modules trained beside the adapter (modules_to_save) are put back as their trained copies."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    def replace(kind, new) -> None:
        for name, module in list(hf.named_modules()):
            if isinstance(module, kind):
                parent_name, _, child = name.rpartition(".")
                setattr(hf.get_submodule(parent_name) if parent_name else hf, child, new(module))

    replace(AuxiliaryTrainingWrapper, lambda wrapper: wrapper.modules_to_save["default"])  # the trained head copy
    replace(BaseTunerLayer, lambda layer: (layer.merge(), layer.get_base_layer())[1])
    hf._hf_peft_config_loaded = False
    if hasattr(hf, "peft_config"):
        del hf.peft_config


def _peft_task(model: nn.Module):
    from peft import TaskType

    return TaskType.TOKEN_CLS if type(model).__name__.endswith("ForTokenClassification") else TaskType.SEQ_CLS


def _wrap_lora(model: nn.Module, method: MethodConfig) -> nn.Module:
    from peft import LoraConfig, TaskType, get_peft_model

    causal = is_causal_lm(model)
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM if causal else _peft_task(model),
        r=method.lora.r,
        lora_alpha=method.lora.alpha,
        lora_dropout=method.lora.dropout,
        target_modules=lora_target_modules(model, method),
        # a new classification head is trained and saved in full; an LM head (often tied to the embeddings) is not
        modules_to_save=None if causal else head_module_names(model),
    )
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers 5's deprecated `is_gradient_checkpointing`; harmless, and noisy on every
            # LoRA run. Drop this filter once peft reads `is_activation_checkpointing`.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, lora)
    except ValueError as err:
        raise MethodError(f"method.lora.target_modules: {err}; list module names of this model there") from None
