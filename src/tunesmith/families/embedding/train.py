"""Wire sentence-transformers' trainer for the embedding task: same settings, checkpoints and resume as the rest.

    result = train_embedding(cfg, bundle, run_dir, resolved, start_from=None, callbacks=())

The arguments mirror `trainer.training_arguments` (seed, schedule, eval/save cadence, best checkpoint on eval loss);
the batch sampler is NO_DUPLICATES so in-batch negatives are never a row's own positive. Checkpoints are committed
by AtomicCheckpoints like every other run; model/ is written with `atomic_dir` as a sentence-transformers dir.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from tunesmith.config import Config, MethodKind
from tunesmith.families.embedding import model as task
from tunesmith.hub import ResolvedModel, loading
from tunesmith.provenance import write_seen_texts
from tunesmith.training.checkpoints import AtomicCheckpoints, atomic_dir
from tunesmith.training.identity import write_identity
from tunesmith.training.methods import count_params, load_injected_checkpoints
from tunesmith.training.trainer import TrainingError, efficiency_arguments, planned_steps, resolve_precision

_log = logging.getLogger(__name__)


def training_arguments(cfg: Config, output_dir: str, precision: str, *, n_train: int, has_eval: bool):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    t = cfg.training
    cadence = "steps" if t.eval_steps else "epoch"
    return SentenceTransformerTrainingArguments(
        output_dir=output_dir, num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.learning_rate, weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio, eval_strategy=cadence if has_eval else "no", save_strategy=cadence,
        eval_steps=t.eval_steps, save_steps=t.eval_steps, save_total_limit=None,  # AtomicCheckpoints rotates
        load_best_model_at_end=has_eval, metric_for_best_model="loss" if has_eval else None, greater_is_better=False,
        logging_strategy="steps", logging_steps=max(1, planned_steps(cfg, n_train) // 20), seed=cfg.seed,
        data_seed=cfg.seed, bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(), report_to="none",
        dataloader_num_workers=0, batch_sampler=BatchSamplers.NO_DUPLICATES, **efficiency_arguments(cfg, n_train),
    )


def train_embedding(cfg: Config, bundle, run_dir: Path, resolved: ResolvedModel, *, start_from: Path | None,
                    callbacks: Sequence = ()):
    """Fine-tune `resolved` on bundle.train (pairs) and save run_dir/model as a sentence-transformers dir."""
    from sentence_transformers import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback, PrinterCallback

    from tunesmith.training.run import TrainResult

    kind = MethodKind(cfg.method.kind)
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        model = task.load_model(resolved.path, cfg, revision=resolved.revision)
    model = task.apply_method(model, cfg.method)
    params = count_params(model)
    scored = task.is_scored(bundle.train)
    k = 0 if scored else task.negatives_per_row([bundle.train, bundle.eval])
    most = max((len(n) for n in bundle.train["negatives"]), default=0) if not scored else 0
    if most > k:
        _log.warning("rows carry up to %d hard negatives but some have %d; training uses the first %d of each row "
                     "(MultipleNegativesRankingLoss needs the same number per row)", most, k, k)
    train_ds = task.to_dataset(bundle.train, scored=scored, negatives=k)
    eval_ds = task.to_dataset(bundle.eval, scored=scored, negatives=k) if len(bundle.eval) else None
    if not scored and len(train_ds) < 2:
        raise TrainingError("in-batch negatives need at least 2 training pairs; add rows")
    precision = resolve_precision(cfg.training.precision)
    checkpoint_dir = run_dir / "checkpoints"
    args = training_arguments(cfg, str(checkpoint_dir), precision, n_train=len(train_ds), has_eval=eval_ds is not None)
    own_progress = any(getattr(cb, "shows_progress", False) for cb in callbacks)
    args.disable_tqdm = args.disable_tqdm or own_progress
    all_callbacks = [AtomicCheckpoints(keep=cfg.training.save_total_limit), *callbacks]
    if eval_ds is not None and cfg.training.early_stopping_patience:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.training.early_stopping_patience))
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                                         loss=task.build_loss(model, cfg, scored=scored), callbacks=all_callbacks)
    if own_progress:
        trainer.remove_callback(PrinterCallback)
    if MethodKind(cfg.method.kind) is MethodKind.LORA:
        load_injected_checkpoints(trainer, task.backbone(model))
    if start_from is None:
        write_identity(checkpoint_dir, cfg, bundle)
    output = trainer.train(resume_from_checkpoint=str(start_from) if start_from else None)

    if kind is MethodKind.LORA:
        with atomic_dir(run_dir / "adapter") as tmp:
            task.save_adapter(model, tmp)  # the adapter alone, logged with the run
        task.merge_adapter(model)
    seen = [*bundle.train["query"].astype(str), *bundle.eval["query"].astype(str)]  # the champion check keys on queries
    model_dir = run_dir / "model"
    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        write_seen_texts(tmp, seen)
    state = trainer.state
    if not cfg.training.keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return TrainResult(
        model_dir=model_dir, method=kind.value, precision=precision, trainable_params=params.trainable,
        total_params=params.total, train_runtime_s=float(output.metrics.get("train_runtime", 0.0)),
        train_examples_per_s=float(output.metrics.get("train_samples_per_second", 0.0)),
        best_metric=state.best_metric, best_checkpoint=state.best_model_checkpoint,
        log_history=list(state.log_history),
    )
