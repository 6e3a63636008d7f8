"""The training stage: config + DataBundle -> a fine-tuned model dir under run_dir.

    result = train(cfg, bundle, run_dir)            # fresh run
    result = train(cfg, bundle, run_dir, resume=True)  # after a crash: continue from the last complete checkpoint
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from transformers import TrainerCallback

from tunesmith.config import Config, MethodKind
from tunesmith.families import get as family
from tunesmith.hub import loading, start_weights
from tunesmith.model_card import write_model_card
from tunesmith.provenance import write_seen_texts
from tunesmith.training.checkpoints import (
    atomic_dir,
    complete_checkpoints,
    find_last_complete_checkpoint,
    remove_incomplete,
)
from tunesmith.training.distill import (
    needs_teacher,
    resolve_teacher,
    shrink_layers,
    write_distill_record,
)
from tunesmith.training.distributed import barrier, is_main_process
from tunesmith.training.identity import check_identity, write_identity
from tunesmith.training.methods import apply_method, check_method_available, count_params
from tunesmith.training.privacy import PrivateTrainer, freeze_shared_positions, privacy_record
from tunesmith.training.privacy import check_supported as check_privacy_supported
from tunesmith.training.trainer import (
    TrainingError,
    build_trainer,
    matmul_math,
    resolve_precision,
    seed_everything,
)


class Bundle(Protocol):
    """What training reads from `tunesmith.data.DataBundle`."""

    train: pd.DataFrame
    eval: pd.DataFrame
    labels: list[str]


@dataclass
class TrainResult:
    model_dir: Path  # run_dir / "model": safetensors weights, config (id2label), tokenizer
    method: str
    precision: str  # "bf16" | "fp32" | "bf16_math"
    trainable_params: int
    total_params: int
    train_runtime_s: float  # this call only: a resumed run reports the resumed part
    train_examples_per_s: float
    best_metric: float | None  # cfg.training.metric on the eval split at the best checkpoint
    best_checkpoint: str | None
    log_history: list[dict] = field(default_factory=list)
    privacy: dict | None = None  # training.privacy: the spent epsilon, delta, noise, ... (training.privacy.record)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir)
        return d


def train(
    cfg: Config,
    bundle: Bundle,
    run_dir: str | Path,
    *,
    resume: bool = False,
    callbacks: Sequence[TrainerCallback] | None = None,
) -> TrainResult:
    """Fine-tune `cfg.model.base` on `bundle.train`, pick the best checkpoint on `bundle.eval`, save it to run_dir/model.

    Args:
        cfg: the job config (model, method, training, seed).
        bundle: train/eval DataFrames with `text` and `label` columns, and the label list (class id = index).
        run_dir: this run's folder; checkpoints go to run_dir/checkpoints.
        resume: continue from the last complete checkpoint in run_dir/checkpoints.
        callbacks: extra transformers TrainerCallbacks (progress, tracking).

    Raises:
        TrainingError: nothing to resume from, checkpoints of an earlier run in the way, or (on resume) data,
            labels or config that differ from the run's start (recorded in checkpoints/run_identity.json).
        ModelNotFound: `cfg.model.base` cannot be resolved or loaded.
    """
    run_dir = Path(run_dir).resolve()
    if len(bundle.train) == 0:
        raise TrainingError("the train split is empty; check data.path / data.train and the split shares")
    if resume:
        check_resumable(cfg, bundle, run_dir)  # before loading anything: fail fast
    start_from = _checkpoint_to_resume(run_dir / "checkpoints", resume)
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)

    seed_everything(cfg.seed)
    resolved = start_weights(cfg)
    task = family(cfg.task)  # the family decides head, inputs, loss and how it trains
    return task.train(cfg, bundle, run_dir, resolved, start_from=start_from, callbacks=callbacks or ())


@dataclass(frozen=True)
class TrainerHooks:
    """What a family that trains through the transformers Trainer provides to `train_with_trainer`."""

    load_tokenizer: Callable  # (cfg, resolved) -> tokenizer
    build_model: Callable  # (cfg, resolved, labels, method_kind) -> a model with the family's head
    trainer_parts: Callable  # (cfg, bundle, tokenizer, model, teacher_dir) -> TrainerParts
    finalize_model: Callable | None = None  # (model, cfg, bundle): regression folds its target scaling in


def encoder_hooks(load_tokenizer: Callable, build_model: Callable, trainer_parts: Callable,
                  finalize_model: Callable | None = None, *, with_teacher: bool = False) -> TrainerHooks:
    """Hooks from a family's usual functions: `load_tokenizer(path, revision=, trust_remote_code=)`,
    `build_model(path, labels, revision=, trust_remote_code=)`, `trainer_parts(cfg, bundle, tokenizer)` (with
    `with_teacher`: also the student model and the distillation teacher's dir)."""
    def tokenizer(cfg: Config, resolved):
        return load_tokenizer(resolved.path, revision=resolved.revision, trust_remote_code=cfg.model.trust_remote_code)

    def model(cfg: Config, resolved, labels, kind):
        return build_model(resolved.path, labels, revision=resolved.revision, trust_remote_code=cfg.model.trust_remote_code)

    def parts(cfg: Config, bundle, tok, built, teacher_dir):
        return trainer_parts(cfg, bundle, tok, built, teacher_dir) if with_teacher else trainer_parts(cfg, bundle, tok)

    return TrainerHooks(tokenizer, model, parts, finalize_model)


def train_with_trainer(hooks: TrainerHooks, cfg: Config, bundle: Bundle, run_dir: Path, resolved, *,
                       start_from: Path | None, callbacks: Sequence[TrainerCallback] = ()) -> TrainResult:
    """Load, apply the method, train with the family's parts, save run_dir/model (LoRA merged, adapter kept)."""
    checkpoint_dir = run_dir / "checkpoints"
    distill = MethodKind(cfg.method.kind) is MethodKind.DISTILL  # the student trains with method.distill.student_method
    method = cfg.method.student()
    kind = MethodKind(method.kind)
    check_method_available(kind)  # before loading: QLoRA needs bitsandbytes and CUDA
    if cfg.training.privacy is not None:
        check_privacy_supported()
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        tokenizer = hooks.load_tokenizer(cfg, resolved)
        model = hooks.build_model(cfg, resolved, bundle.labels, kind)
    if distill and cfg.method.distill.student_layers:
        model = shrink_layers(model, cfg.method.distill.student_layers)
    model = apply_method(model, method)
    frozen_for_privacy = freeze_shared_positions(model) if cfg.training.privacy is not None else []
    params = count_params(model)
    teacher_dir = resolve_teacher(cfg.method.distill.teacher, cfg) if distill and needs_teacher(cfg) else None
    parts = hooks.trainer_parts(cfg, bundle, tokenizer, model, teacher_dir)
    precision = resolve_precision(cfg.training.precision)
    trainer_cls, trainer_kwargs = parts.trainer_cls, parts.trainer_kwargs
    if cfg.training.privacy is not None:  # DP-SGD (the config refuses it with distillation's own trainer)
        trainer_cls, trainer_kwargs = PrivateTrainer, {**trainer_kwargs, "privacy": cfg.training.privacy}
    trainer = build_trainer(cfg, model, tokenizer, parts.train_ds, parts.eval_ds, str(checkpoint_dir), precision,
                            callbacks, data_collator=parts.data_collator, compute_metrics=parts.compute_metrics,
                            compute_loss_func=parts.compute_loss_func, packed=parts.packed,
                            trainer_cls=trainer_cls, **trainer_kwargs)
    if distill and is_main_process():
        write_distill_record(run_dir, cfg, teacher_dir, parts.distilled)
    if start_from is None and is_main_process():
        write_identity(checkpoint_dir, cfg, bundle)  # before the first checkpoint, so every resume can check it
    with matmul_math(precision):  # bf16_math: oneDNN's bf16 math for fp32 weights, only while training
        output = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
    barrier()  # DDP: every rank is done with the checkpoints before rank 0 saves the model and removes them
    privacy = privacy_record(trainer)  # the accountant's spent epsilon; Opacus' hooks leave the model
    if privacy is not None:
        privacy["frozen"] = frozen_for_privacy
    if hooks.finalize_model is not None:
        hooks.finalize_model(trainer.model, cfg, bundle)
    seen = [*bundle.train["text"].astype(str), *bundle.eval["text"].astype(str)]
    distilled = parts.distilled
    if distilled is not None and distilled.synthetic_rows:  # teacher-labelled rows were trained on too
        seen += distilled.frame["text"].astype(str).tolist()[len(bundle.train):]
    lora = kind in (MethodKind.LORA, MethodKind.QLORA)
    model_dir = save_final_model(trainer.model, tokenizer, run_dir, lora=lora, seen_texts=seen, cfg=cfg,
                                 card_extra={"privacy": privacy} if privacy else {}) \
        if is_main_process() else run_dir / "model"  # DDP: only rank 0 writes files
    state = trainer.state
    if not cfg.training.keep_checkpoints and is_main_process():  # the run finished and model/ is saved: nothing left to resume
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TrainResult(
        model_dir=model_dir,
        method=cfg.method.kind.value,
        precision=precision,
        trainable_params=params.trainable,
        total_params=params.total,
        train_runtime_s=float(output.metrics.get("train_runtime", 0.0)),
        train_examples_per_s=float(output.metrics.get("train_samples_per_second", 0.0)),
        best_metric=state.best_metric,
        best_checkpoint=state.best_model_checkpoint,
        log_history=list(state.log_history),
        privacy=privacy,
    )


def check_resumable(cfg: Config, bundle: Bundle, run_dir: str | Path) -> Path:
    """The checkpoint `resume` would continue from, after checking the run is unfinished and unchanged.

    Raises:
        TrainingError: the run already finished, has no complete checkpoint, or its data/config changed.
    """
    run_dir = Path(run_dir)
    if (run_dir / "model").is_dir():
        raise TrainingError(
            f"cannot resume {run_dir}: the run finished (its model is in {run_dir / 'model'}); start a new run"
        )
    last = find_last_complete_checkpoint(run_dir / "checkpoints")
    if last is None:
        raise TrainingError(
            f"cannot resume: no complete checkpoint in {run_dir / 'checkpoints'} (the run stopped before its first "
            "checkpoint was committed); start the run again without resume"
        )
    check_identity(run_dir / "checkpoints", cfg, bundle)
    return last


def _checkpoint_to_resume(checkpoint_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to continue from (resume) or None (fresh run); clears half-written leftovers either way."""
    if resume:
        last = find_last_complete_checkpoint(checkpoint_dir)  # check_resumable made sure there is one
    elif complete_checkpoints(checkpoint_dir):
        raise TrainingError(
            f"{checkpoint_dir} holds checkpoints of an earlier run; resume it (resume=True / --resume) "
            "or train into a new run dir"
        )
    else:
        last = None
    if is_main_process():  # DDP: one rank cleans up, the others would race it
        remove_incomplete(checkpoint_dir)
    return last


def save_final_model(model, tokenizer, run_dir: Path, *, lora: bool, seen_texts: Sequence[str] = (), cfg=None,
                     card_extra: dict | None = None) -> Path:
    """Write run_dir/model atomically: safetensors + config (id2label) + tokenizer + seen_texts.npy. LoRA is merged
    into the base so the result loads with plain `AutoModelForSequenceClassification`; the adapter is kept in
    run_dir/adapter. The seen-texts record ships with the weights, so a later run compares against this model only
    on test rows it never trained on."""
    if lora:
        with atomic_dir(run_dir / "adapter") as tmp:
            model.save_pretrained(tmp)
        model = model.merge_and_unload()
    if getattr(model.config, "use_cache", None) is False:
        model.config.use_cache = True  # off only while training packed rows (tasks.causal_lm.build_model)
    model_dir = run_dir / "model"
    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_seen_texts(tmp, seen_texts)
        if cfg is not None:
            write_model_card(tmp, cfg, **(card_extra or {}))  # tunesmith.json: which family, labels, versions
    return model_dir
