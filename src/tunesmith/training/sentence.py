"""Training through sentence-transformers' own trainers (SentenceTransformerTrainer, CrossEncoderTrainer) with the
same checkpoints, early stopping, resume identity, LoRA handling and model dir as every other tunesmith run.

    parts = SentenceParts(model, train_ds, eval_ds, loss, args_cls, trainer_cls, backbone, ...)   # the family's
    result = train_sentence_model(cfg, bundle, run_dir, parts, start_from=None, callbacks=())
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from tunesmith.config import Config, MethodKind
from tunesmith.io import atomic_dir
from tunesmith.model_card import write_model_card
from tunesmith.provenance import write_seen_texts
from tunesmith.training.checkpoints import AtomicCheckpoints
from tunesmith.training.identity import write_identity
from tunesmith.training.methods import count_params, load_injected_checkpoints
from tunesmith.training.trainer import argument_values, matmul_math, resolve_precision


@dataclass
class SentenceParts:
    """What a sentence-transformers family hands the training stage."""

    model: Any  # SentenceTransformer / CrossEncoder with the method applied
    train_ds: Any
    eval_ds: Any | None
    loss: Any
    args_cls: type  # SentenceTransformerTrainingArguments / CrossEncoderTrainingArguments
    trainer_cls: type  # SentenceTransformerTrainer / CrossEncoderTrainer
    backbone: Any  # the transformers model inside: where a LoRA adapter sits
    save_adapter: Callable[[Any, Path], None]  # (model, folder): the adapter alone, logged with the run
    merge_adapter: Callable[[Any], None]  # fold the adapter into the weights before saving
    args_extra: dict = field(default_factory=dict)  # e.g. the batch sampler of in-batch negatives
    seen_column: str = "query"  # what the champion comparison keys on
    eval_metric: str = "loss"  # the best checkpoint's metric (a named eval dataset logs `<name>_loss`)


def sentence_arguments(cfg: Config, args_cls: type, output_dir: str, precision: str, *, n_train: int,
                       has_eval: bool, metric: str = "loss", **extra):
    """A sentence-transformers trainer's arguments: the shared values, checkpoints on eval loss, a seeded data order."""
    return args_cls(**argument_values(cfg, output_dir, precision, n_train=n_train, has_eval=has_eval, metric=metric),
                    data_seed=cfg.seed, **extra)


def train_sentence_model(cfg: Config, bundle, run_dir: Path, parts: SentenceParts, *, start_from: Path | None,
                         callbacks: Sequence = ()):
    """Train, keep the best checkpoint on eval loss, save run_dir/model (LoRA merged, the adapter kept beside)."""
    from transformers import EarlyStoppingCallback, PrinterCallback

    from tunesmith.training.run import TrainResult

    kind = MethodKind(cfg.method.student().kind)  # a distilled student trains with distill.student_method
    params = count_params(parts.model)
    precision = resolve_precision(cfg.training.precision)
    checkpoint_dir = run_dir / "checkpoints"
    n_train = sum(map(len, parts.train_ds.values())) if isinstance(parts.train_ds, dict) else len(parts.train_ds)
    args = sentence_arguments(cfg, parts.args_cls, str(checkpoint_dir), precision, n_train=n_train,
                              has_eval=parts.eval_ds is not None, metric=parts.eval_metric, **parts.args_extra)
    own_progress = any(getattr(cb, "shows_progress", False) for cb in callbacks)
    args.disable_tqdm = args.disable_tqdm or own_progress
    all_callbacks = [AtomicCheckpoints(keep=cfg.training.save_total_limit), *callbacks]
    if parts.eval_ds is not None and cfg.training.early_stopping_patience:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    trainer = parts.trainer_cls(model=parts.model, args=args, train_dataset=parts.train_ds,
                                eval_dataset=parts.eval_ds, loss=parts.loss, callbacks=all_callbacks)
    if own_progress:
        trainer.remove_callback(PrinterCallback)
    if kind is MethodKind.LORA:  # the best / resumed checkpoint goes back into the injected adapter
        load_injected_checkpoints(trainer, parts.backbone)
    if start_from is None:
        write_identity(checkpoint_dir, cfg, bundle)
    with matmul_math(precision):
        output = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)

    if kind is MethodKind.LORA:
        with atomic_dir(run_dir / "adapter") as tmp:
            parts.save_adapter(parts.model, tmp)
        parts.merge_adapter(parts.model)
    seen = [*bundle.train[parts.seen_column].astype(str), *bundle.eval[parts.seen_column].astype(str)]
    model_dir = run_dir / "model"
    with atomic_dir(model_dir) as tmp:
        parts.model.save_pretrained(str(tmp), safe_serialization=True)
        write_seen_texts(tmp, seen)
        write_model_card(tmp, cfg)  # tunesmith.json: the family, versions
    state = trainer.state
    if not cfg.training.keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TrainResult(
        model_dir=model_dir, method=MethodKind(cfg.method.kind).value, precision=precision,
        trainable_params=params.trainable,
        total_params=params.total, train_runtime_s=float(output.metrics.get("train_runtime", 0.0)),
        train_examples_per_s=float(output.metrics.get("train_samples_per_second", 0.0)),
        best_metric=state.best_metric, best_checkpoint=state.best_model_checkpoint,
        log_history=list(state.log_history),
    )


class Weighted(nn.Module):
    """A sentence-transformers loss times a weight (method.distill's kd_weight / hard_weight in one training, one
    named dataset each)."""

    def __init__(self, loss: nn.Module, weight: float):
        super().__init__()
        self.loss, self.weight = loss, float(weight)
        self.model = loss.model  # what the trainer swaps for a wrapped (distributed, compiled) model

    def forward(self, features, labels):
        return self.weight * self.loss(features, labels)
