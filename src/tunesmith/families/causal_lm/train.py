"""Training a chat model: the config's chat template, a 4-bit base for QLoRA, packed rows with loss on the
assistant tokens, and with `method.kind: distill` the teacher LM beside the student (token-level KD).

Packed rows train with per-document attention (attention.py: flash_attention_2 on CUDA with flash-attn, else
one SDPA call per conversation); logits only at the loss positions (model.py) unless Liger's fused linear
cross-entropy (training.liger) or distillation needs them all."""

from __future__ import annotations

from functools import partial

from tunesmith.config import Config, MethodKind
from tunesmith.contracts import TrainerParts
from tunesmith.families.causal_lm import model as lm
from tunesmith.families.causal_lm.attention import use_packed_attention
from tunesmith.training.distill import DistillTrainer, load_teacher_lm
from tunesmith.training.run import TrainerHooks, train_with_trainer


def _tokenizer(cfg: Config, resolved):
    return lm.load_tokenizer(resolved.path, revision=resolved.revision, trust_remote_code=cfg.model.trust_remote_code,
                             template=cfg.chat.template)


def _model(cfg: Config, resolved, labels, kind: MethodKind):
    model = lm.build_model(resolved.path, labels, revision=resolved.revision,
                           trust_remote_code=cfg.model.trust_remote_code, quantize_4bit=kind is MethodKind.QLORA)
    if cfg.training.packing:
        use_packed_attention(model)
    return model


def _parts(cfg: Config, bundle, tokenizer, model, teacher_dir) -> TrainerParts:
    parts = lm.trainer_parts(cfg, bundle, tokenizer)
    if MethodKind(cfg.method.kind) is MethodKind.DISTILL:  # the teacher runs beside the student on each packed batch
        teacher = load_teacher_lm(teacher_dir, model, tokenizer, cfg) if teacher_dir else None
        parts.trainer_cls, parts.trainer_kwargs = DistillTrainer, {"distill": cfg.method.distill, "teacher": teacher}
    if cfg.training.pack_tokens:  # rows of a token budget instead of batch_size conversations
        parts.trainer_kwargs = {**parts.trainer_kwargs, "token_budget": cfg.training.pack_tokens}
    return parts


train = partial(train_with_trainer, TrainerHooks(_tokenizer, _model, _parts))
