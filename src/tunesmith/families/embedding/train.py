"""Training an embedding model with sentence-transformers' trainer: same settings, checkpoints and resume as the rest.

    result = train(cfg, bundle, run_dir, resolved, start_from=None, callbacks=())

The batch sampler is NO_DUPLICATES so in-batch negatives are never a row's own positive; the shared part (arguments,
checkpoints, early stopping, LoRA, the model dir) is `tunesmith.training.sentence`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tunesmith.config import Config, MethodKind
from tunesmith.families.embedding import model as task
from tunesmith.hub import ResolvedModel, loading
from tunesmith.training.distill import needs_teacher, resolve_teacher, shrink_layers, write_distill_record
from tunesmith.training.sentence import SentenceParts, Weighted, sentence_arguments, train_sentence_model
from tunesmith.training.trainer import TrainingError

_log = logging.getLogger(__name__)


def training_arguments(cfg: Config, output_dir: str, precision: str, *, n_train: int, has_eval: bool):
    """The shared arguments, with batches that never hold one positive twice (in-batch negatives stay negatives)."""
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    return sentence_arguments(cfg, SentenceTransformerTrainingArguments, output_dir, precision, n_train=n_train,
                              has_eval=has_eval, batch_sampler=BatchSamplers.NO_DUPLICATES)


def train(cfg: Config, bundle, run_dir: Path, resolved: ResolvedModel, *, start_from: Path | None,
          callbacks: Sequence = ()):
    """Fine-tune `resolved` on bundle.train (pairs) and save run_dir/model as a sentence-transformers dir."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    distill = MethodKind(cfg.method.kind) is MethodKind.DISTILL  # the student trains with distill.student_method
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        model = task.load_model(resolved.path, cfg, revision=resolved.revision)
    if distill and cfg.method.distill.student_layers:
        shrink_layers(task.backbone(model), cfg.method.distill.student_layers)
    model = task.apply_method(model, cfg.method.student())
    scored = task.is_scored(bundle.train)
    k = 0 if scored else task.negatives_per_row([bundle.train])
    fewest = min((len(n) for n in bundle.train["negatives"]), default=0) if not scored else 0
    if k > fewest:
        _log.info("rows carry %d to %d hard negatives; rows with fewer get other rows' positives as their missing "
                  "ones (MultipleNegativesRankingLoss needs the same number per row)", fewest, k)
    train_ds = task.to_dataset(bundle.train, scored=scored, negatives=k)
    eval_ds = task.to_dataset(bundle.eval, scored=scored, negatives=k) if len(bundle.eval) else None
    if not scored and len(train_ds) < 2:
        raise TrainingError("in-batch negatives need at least 2 training pairs; add rows")
    loss = task.build_loss(model, cfg, scored=scored)
    if distill:
        train_ds, eval_ds, loss = _with_teacher(cfg, bundle, run_dir, model, train_ds, eval_ds, loss)
    parts = SentenceParts(model, train_ds, eval_ds, loss,
                          SentenceTransformerTrainingArguments, SentenceTransformerTrainer, task.backbone(model),
                          task.save_adapter, task.merge_adapter, args_extra={"batch_sampler": BatchSamplers.NO_DUPLICATES},
                          eval_metric="pairs_loss" if isinstance(eval_ds, dict) else "loss")
    return train_sentence_model(cfg, bundle, run_dir, parts, start_from=start_from, callbacks=callbacks)


def _with_teacher(cfg: Config, bundle, run_dir: Path, model, train_ds, eval_ds, loss):
    """Distillation (sentence-transformers' recipe): the student's embeddings of the training texts (and unlabeled
    ones) regress to the teacher's (MSELoss, x kd_weight) beside the pairs' own loss (x hard_weight), one dataset
    each; eval stays the pairs' loss. Without a teacher (the no-KD comparison): the pairs alone."""
    from sentence_transformers.sentence_transformer import losses

    d = cfg.method.distill
    teacher_dir = resolve_teacher(d.teacher, cfg) if needs_teacher(cfg) else None
    data = None
    if teacher_dir is not None:
        kd_ds, data = task.teacher_embeddings(cfg, bundle, teacher_dir, model)
        train_ds = {"distill": kd_ds, **({"pairs": train_ds} if d.hard_weight else {})}
        loss = {"distill": Weighted(losses.MSELoss(model), d.kd_weight), "pairs": Weighted(loss, d.hard_weight)}
        eval_ds = {"pairs": eval_ds} if eval_ds is not None else None
    write_distill_record(run_dir, cfg, teacher_dir, data)
    return train_ds, eval_ds, loss


train_embedding = train
