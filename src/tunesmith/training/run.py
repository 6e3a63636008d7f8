"""The training stage: config + DataBundle -> a fine-tuned model dir under run_dir.

    result = train(cfg, bundle, run_dir)            # fresh run
    result = train(cfg, bundle, run_dir, resume=True)  # after a crash: continue from the last complete checkpoint
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from transformers import TrainerCallback

from tunesmith.config import Config, MethodKind
from tunesmith.hub import loading, resolve_model
from tunesmith.provenance import write_seen_texts
from tunesmith.tasks import task_for
from tunesmith.training.checkpoints import (
    atomic_dir,
    complete_checkpoints,
    find_last_complete_checkpoint,
    remove_incomplete,
)
from tunesmith.training.distill import (
    DistillTrainer,
    add_teacher_columns,
    distill_data,
    load_teacher_lm,
    needs_teacher,
    resolve_teacher,
    shrink_layers,
    write_distill_record,
)
from tunesmith.training.distributed import barrier, is_main_process
from tunesmith.training.identity import check_identity, write_identity
from tunesmith.training.methods import apply_method, check_method_available, count_params
from tunesmith.training.trainer import (
    TrainingError,
    build_trainer,
    resolve_precision,
    seed_everything,
    to_dataset,
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
    precision: str  # "bf16" | "fp32"
    trainable_params: int
    total_params: int
    train_runtime_s: float  # this call only: a resumed run reports the resumed part
    train_examples_per_s: float
    best_metric: float | None  # cfg.training.metric on the eval split at the best checkpoint
    best_checkpoint: str | None
    log_history: list[dict] = field(default_factory=list)

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
    checkpoint_dir = run_dir / "checkpoints"
    if len(bundle.train) == 0:
        raise TrainingError("the train split is empty; check data.path / data.train and the split shares")
    if resume:
        check_resumable(cfg, bundle, run_dir)  # before loading anything: fail fast
    start_from = _checkpoint_to_resume(checkpoint_dir, resume)
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)

    seed_everything(cfg.seed)
    resolved = resolve_model(cfg.model.base, cfg.model.revision)
    task = task_for(cfg)  # the task family decides head, inputs and loss (multi-label: its own module)
    if hasattr(task, "train_model"):  # embedding: sentence-transformers' own trainer, model and save format
        return task.train_model(cfg, bundle, run_dir, resolved, start_from=start_from, callbacks=callbacks or ())
    remote = cfg.model.trust_remote_code
    distill = MethodKind(cfg.method.kind) is MethodKind.DISTILL  # the student trains with method.distill.student_method
    method = cfg.method.student()
    kind = MethodKind(method.kind)
    check_method_available(kind)  # before loading: QLoRA needs bitsandbytes and CUDA
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        if hasattr(task, "trainer_parts"):  # causal-lm: the config's chat template; a 4-bit base for QLoRA
            tokenizer = task.load_tokenizer(resolved.path, revision=resolved.revision, trust_remote_code=remote,
                                            template=cfg.chat.template)
            model = task.build_model(resolved.path, bundle.labels, revision=resolved.revision, trust_remote_code=remote,
                                     quantize_4bit=kind is MethodKind.QLORA)
        else:
            tokenizer = task.load_tokenizer(resolved.path, revision=resolved.revision, trust_remote_code=remote)
            model = task.build_model(resolved.path, bundle.labels, revision=resolved.revision, trust_remote_code=remote)
    if distill and cfg.method.distill.student_layers:
        model = shrink_layers(model, cfg.method.distill.student_layers)
    model = apply_method(model, method)
    params = count_params(model)
    teacher_dir = resolve_teacher(cfg.method.distill.teacher, cfg) if distill and needs_teacher(cfg) else None
    distilled = None

    max_len = cfg.model.max_length
    precision = resolve_precision(cfg.training.precision)
    if hasattr(task, "trainer_parts"):  # the task builds its own datasets and collator
        parts = task.trainer_parts(cfg, bundle, tokenizer)
        extra = {}
        if distill:  # token-level KD: the teacher runs beside the student on the same packed batch
            extra = {"trainer_cls": DistillTrainer, "distill": cfg.method.distill,
                     "teacher": load_teacher_lm(teacher_dir, model, tokenizer, cfg) if teacher_dir else None}
        trainer = build_trainer(cfg, model, tokenizer, parts.train_ds, parts.eval_ds, str(checkpoint_dir), precision,
                                callbacks or (), data_collator=parts.data_collator,
                                compute_metrics=parts.compute_metrics,
                                compute_loss_func=getattr(parts, "compute_loss_func", None), **extra)
    else:
        train_frame, extra = bundle.train, {}
        if distill:  # the teacher's logits (and its labelled unlabeled rows) join the train split
            distilled = distill_data(cfg, bundle, teacher_dir) if teacher_dir else None
            train_frame = distilled.frame if distilled else bundle.train
            extra = {"trainer_cls": DistillTrainer, "distill": cfg.method.distill}
        train_ds = to_dataset(train_frame, bundle.labels, tokenizer, max_len, where="train", encode=task.encode)
        if distilled is not None:
            train_ds = add_teacher_columns(train_ds, train_frame)
        eval_ds = (to_dataset(bundle.eval, bundle.labels, tokenizer, max_len, where="eval", encode=task.encode)
                   if len(bundle.eval) else None)
        trainer = build_trainer(cfg, model, tokenizer, train_ds, eval_ds, str(checkpoint_dir), precision,
                                callbacks or (), **extra)
    if distill and is_main_process():
        write_distill_record(run_dir, cfg, teacher_dir, distilled)
    if start_from is None and is_main_process():
        write_identity(checkpoint_dir, cfg, bundle)  # before the first checkpoint, so every resume can check it
    output = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)
    barrier()  # DDP: every rank is done with the checkpoints before rank 0 saves the model and removes them

    if hasattr(task, "finalize_model"):  # regression: fold the target scaling into the head before saving
        task.finalize_model(trainer.model, cfg, bundle)
    seen = [*bundle.train["text"].astype(str), *bundle.eval["text"].astype(str)]
    if distilled is not None and distilled.synthetic_rows:  # teacher-labelled rows were trained on too
        seen += distilled.frame["text"].astype(str).tolist()[len(bundle.train):]
    lora = kind in (MethodKind.LORA, MethodKind.QLORA)
    model_dir = save_final_model(trainer.model, tokenizer, run_dir, lora=lora, seen_texts=seen) \
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


def save_final_model(model, tokenizer, run_dir: Path, *, lora: bool, seen_texts: Sequence[str] = ()) -> Path:
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
    return model_dir
