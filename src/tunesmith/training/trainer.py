"""Wire a transformers `Trainer` from the config: arguments, datasets, metrics, loss, precision, seeding.

No training loop lives here; this module only chooses the Trainer's settings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import (
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from tunesmith.config import Config
from tunesmith.encoders import encode
from tunesmith.evaluation.metrics import confusion_counts, confusion_scores
from tunesmith.training.checkpoints import AtomicCheckpoints
from tunesmith.training.distributed import world_size
from tunesmith.training.methods import is_causal_lm
from tunesmith.training.sampling import EpochSeededSampler, TokenBudgetBatchSampler


class TrainingError(ValueError):
    """Training cannot start: unknown labels in the data, no checkpoint to resume, changed data on resume, ..."""


def seed_everything(seed: int) -> None:
    """Seed python/numpy/torch and ask for deterministic kernels without the slow parts of `enable_full_determinism`.

    On CPU the kernels we use are already deterministic at a fixed thread count. On CUDA we pin cuBLAS
    workspaces and cuDNN algorithms but do not set CUDA_LAUNCH_BLOCKING, which would serialize every kernel.
    """
    set_seed(seed)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_precision(requested: str) -> str:
    """`auto` -> bf16 where the hardware runs it natively (CUDA bf16, or a CPU with AMX / AVX512-BF16), else fp32.
    `bf16_math` (fp32 weights, bf16 matmuls inside oneDNN) only on a CPU with AMX, where its tiles do the work."""
    if requested != "auto":
        if requested == "bf16" and not _bf16_available():
            raise TrainingError("training.precision: bf16 is not supported on this machine; use fp32 or auto")
        if requested == "bf16_math" and (torch.cuda.is_available() or not cpu_has_amx()):
            raise TrainingError("training.precision: bf16_math is oneDNN's bf16 math mode for CPUs with AMX (the "
                                "amx_bf16 flag in /proc/cpuinfo), which this machine lacks; use bf16, fp32 or auto")
        return requested
    return "bf16" if _bf16_fast() else "fp32"


def cpu_has_amx() -> bool:
    """The CPU has AMX bf16 tiles (the amx_bf16 flag in /proc/cpuinfo; Linux only)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and "amx_bf16" in line.split() for line in f)
    except OSError:
        return False


@contextmanager
def matmul_math(precision: str) -> Iterator[None]:
    """With `bf16_math`, oneDNN computes fp32 matmuls (and convolutions) in bf16 while this block runs; the
    weights, the optimizer and the saved model stay fp32. Other precisions: nothing changes."""
    if precision != "bf16_math":
        yield
        return
    mkldnn = torch.backends.mkldnn
    before = (mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision)
    mkldnn.matmul.fp32_precision = mkldnn.conv.fp32_precision = "bf16"
    try:
        yield
    finally:
        mkldnn.matmul.fp32_precision, mkldnn.conv.fp32_precision = before


def _bf16_available() -> bool:
    return torch.cuda.is_bf16_supported() if torch.cuda.is_available() else True  # CPU autocast emulates it


def _bf16_fast() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return bool(
        torch.backends.mkldnn.is_available()
        and (getattr(cpu, "_is_amx_tile_supported", lambda: False)() or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    )


def to_dataset(frame: pd.DataFrame, labels: Sequence[str], tokenizer, max_length: int, *, where: str,
               encode: Callable = encode) -> Dataset:
    """Tokenize a split with the task's `encode` (no padding); keeps a `length` column for length-grouped batches."""
    label_ids = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(frame["label"]) - set(label_ids))
    if unknown:
        raise TrainingError(f"{where} split has labels {unknown[:5]} that are not in bundle.labels {list(labels)[:10]}")
    texts = frame["text"].astype(str).tolist()
    enc = dict(encode(tokenizer, texts, max_length))
    enc["labels"] = [label_ids[label] for label in frame["label"]]
    enc["length"] = [len(ids) for ids in enc["input_ids"]]
    return Dataset.from_dict(enc)


def compute_metrics(eval_pred) -> dict[str, float]:
    """accuracy, macro_f1 and weighted_f1 of the eval split, by the code the gates use (evaluation.metrics)."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
    scores = confusion_scores(confusion_counts(labels, logits.argmax(-1), logits.shape[-1]))
    return {name: float(scores[name]) for name in ("accuracy", "macro_f1", "weighted_f1")}


def balanced_class_weights(label_ids: Sequence[int], num_labels: int) -> torch.Tensor:
    """n / (k * count_c), as sklearn's "balanced": the mean weight over the training set is 1."""
    counts = np.bincount(np.asarray(label_ids, dtype=np.int64), minlength=num_labels).astype(np.float64)
    return torch.tensor(len(label_ids) / (num_labels * np.maximum(counts, 1)), dtype=torch.float32)


class WeightedCrossEntropy:
    """A `compute_loss_func`: class-weighted CE, summed and divided by the examples in the accumulated batch."""

    def __init__(self, weights: torch.Tensor):
        self.weights = weights

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        losses = torch.nn.functional.cross_entropy(
            logits.float(), labels, weight=self.weights.to(logits.device), reduction="none"
        )
        denom = num_items_in_batch if num_items_in_batch is not None else labels.numel()
        return losses.sum() / denom


class TunesmithTrainer(Trainer):
    """The stock Trainer with a training order that is a pure function of (seed, epoch); see sampling.py."""

    def __init__(self, *args, train_lengths: Sequence[int], group_by_length: bool, token_budget: int | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self._train_lengths = list(train_lengths)
        self._group_by_length = group_by_length
        self._token_budget = token_budget  # packed rows of whole examples up to this many tokens (pack_tokens)

    def get_train_dataloader(self):
        """With a token budget: micro-batches are first-fit-decreasing bins (TokenBudgetBatchSampler), prepared by
        accelerate like the Trainer's own loader (DDP shards the bins); otherwise the Trainer's loader."""
        if not self._token_budget:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        dataset = self._remove_unused_columns(self.train_dataset, description="Training")
        sampler = TokenBudgetBatchSampler(self._train_lengths, self._token_budget, self.args.seed)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=self.data_collator,
                            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory)
        return self.accelerator.prepare(loader)

    def _get_train_sampler(self, train_dataset=None):  # the hook the Trainer documents for custom samplers
        # One order for the global batch: DDP shards it across ranks, so N processes see the batches one would.
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
        return EpochSeededSampler(self._train_lengths, batch, self.args.seed, self._group_by_length)


def planned_steps(cfg: Config, n_train: int) -> int:
    t = cfg.training
    per_epoch = max(math.ceil(math.ceil(n_train / (t.batch_size * world_size())) / t.grad_accum), 1)  # DDP: global
    return t.max_steps or max(math.ceil(t.epochs * per_epoch), 1)


def argument_values(cfg: Config, output_dir: str, precision: str, *, n_train: int, has_eval: bool,
                    metric: str) -> dict:
    """What every Trainer tunesmith builds takes from the config (transformers' and sentence-transformers' alike):
    schedule, batch sizes, checkpoints on the eval cadence (needed for load-best-at-end), seeds, precision."""
    t = cfg.training
    cadence = "steps" if t.eval_steps else "epoch"
    return dict(
        output_dir=output_dir, num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.grad_accum, learning_rate=t.learning_rate, weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of the total steps
        eval_strategy=cadence if has_eval else "no", save_strategy=cadence, eval_steps=t.eval_steps,
        save_steps=t.eval_steps, save_total_limit=None,  # AtomicCheckpoints rotates, after the new one is committed
        load_best_model_at_end=has_eval, metric_for_best_model=metric if has_eval else None,
        greater_is_better=not (metric.endswith("loss") or metric in ("rmse", "mae")),  # losses, errors: lower is better
        logging_strategy="steps", logging_steps=max(1, planned_steps(cfg, n_train) // 20), seed=cfg.seed,
        bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(),
        report_to="none",  # the registry stage logs to MLflow
        dataloader_num_workers=0, **efficiency_arguments(cfg, n_train),
    )


def training_arguments(cfg: Config, output_dir: str, precision: str, *, n_train: int, has_eval: bool,
                       packed: bool = False) -> TrainingArguments:
    """TrainingArguments from the config (the metric: only what compute_metrics reports, and loss)."""
    return TrainingArguments(
        **argument_values(cfg, output_dir, precision, n_train=n_train, has_eval=has_eval, metric=cfg.training.metric),
        remove_unused_columns=True,
        # Tokens/s in the log history (make bench turns it into achieved FLOP/s). Packed causal-lm rows hold no
        # padding but may hold the pad id (often = eos), so every token counts; padded batches count the mask.
        include_num_input_tokens_seen="all" if packed else "non_padding",
    )


def efficiency_arguments(cfg: Config, n_train: int) -> dict:
    """Gradient checkpointing (non-reentrant: works with LoRA's frozen inputs) and torch.compile, from the config."""
    t = cfg.training
    return {"activation_checkpointing": t.gradient_checkpointing,
            "activation_checkpointing_kwargs": {"use_reentrant": False} if t.gradient_checkpointing else None,
            "torch_compile": use_compile(t.torch_compile, planned_steps(cfg, n_train))}


def use_liger(setting: bool | str) -> bool:
    """`training.liger`: Liger kernels need CUDA and the liger-kernel package (the `gpu` extra); `auto` uses them
    where both are present, `true` refuses to train without them.

    Raises:
        TrainingError: `training.liger: true` on a machine without CUDA or without liger-kernel.
    """
    import importlib.util

    if setting is False:
        return False
    missing = [what for what, ok in (("a CUDA GPU", torch.cuda.is_available()),
                                     ("liger-kernel", importlib.util.find_spec("liger_kernel") is not None)) if not ok]
    if setting is True and missing:
        raise TrainingError(f"training.liger: true needs {' and '.join(missing)}; pip install 'tunesmith[gpu]' on a "
                            "CUDA machine, or set training.liger: auto (on where available) or false")
    return not missing


def use_compile(setting: str, steps: int) -> bool:
    """`auto`: compile only on CUDA for runs long enough to earn back the compile time. On CPU the measured gain
    (benchmarks/train_efficiency.py) does not repay inductor's compile time for fine-tuning-sized runs."""
    if setting != "auto":
        return setting == "on"
    return torch.cuda.is_available() and steps >= 200


def build_trainer(
    cfg: Config,
    model,
    tokenizer,
    train_ds: Dataset,
    eval_ds: Dataset | None,
    output_dir: str,
    precision: str,
    callbacks: Sequence[TrainerCallback] = (),
    *,
    data_collator=None,
    compute_metrics: Callable | None = compute_metrics,
    compute_loss_func: Callable | None = None,
    trainer_cls: type[TunesmithTrainer] | None = None,
    packed: bool = False,
    **trainer_kwargs,
) -> Trainer:
    """A Trainer with dynamic padding, seeded length-grouped order, atomic checkpoints and early stopping.

    A task with its own inputs (causal-lm) passes its collator, and `compute_metrics=None` for eval loss only.
    """
    t = cfg.training
    has_eval = eval_ds is not None and len(eval_ds) > 0
    args = training_arguments(cfg, output_dir, precision, n_train=len(train_ds), has_eval=has_eval, packed=packed)
    args.prediction_loss_only = compute_metrics is None  # no logits gathered when only the loss is wanted
    # A caller's own progress display (the CLI's rich bar) replaces the Trainer's tqdm bars and printed log dicts.
    own_progress = any(getattr(cb, "shows_progress", False) for cb in callbacks)
    args.disable_tqdm = args.disable_tqdm or own_progress
    all_callbacks: list[TrainerCallback] = [AtomicCheckpoints(keep=t.save_total_limit), *callbacks]
    if has_eval and t.early_stopping_patience:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=t.early_stopping_patience))
    loss_func = compute_loss_func  # a task's own loss (regression: Huber), else the model's
    if t.class_weights and compute_loss_func is None:  # a task's own loss (multi-label BCE) weighs itself
        loss_func = WeightedCrossEntropy(balanced_class_weights(list(train_ds["labels"]), model.config.num_labels))
    # Liger patches the model's modules (transformers' use_liger_kernel): causal LMs only, and only on CUDA.
    args.use_liger_kernel = is_causal_lm(model) and use_liger(t.liger)
    trainer = (trainer_cls or TunesmithTrainer)(  # distillation: a subclass with the KD loss (training.distill)
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds if has_eval else None,
        processing_class=tokenizer,
        data_collator=data_collator or DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        compute_loss_func=loss_func,
        callbacks=all_callbacks,
        train_lengths=list(train_ds["length"]),
        group_by_length=t.group_by_length,
        **trainer_kwargs,
    )
    if own_progress:
        trainer.remove_callback(PrinterCallback)
    if loss_func is None and not is_causal_lm(model):
        # Encoder heads (BertForSequenceClassification, ...) take **kwargs but return a per-device *mean* loss,
        # ignoring num_items_in_batch; the Trainer would then skip the grad-accum division and, under DDP,
        # multiply the loss by the world size. Declaring it a plain-mean loss gives the standard scaling.
        trainer.model_accepts_loss_kwargs = False
    return trainer
