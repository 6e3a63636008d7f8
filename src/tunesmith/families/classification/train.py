"""Training a single-label classifier: token ids and class ids, dynamic padding, CE (class-weighted on request),
and with `method.kind: distill` the teacher's logits (and its labelled unlabeled rows) beside each row."""

from __future__ import annotations

from functools import partial

from tunesmith.config import Config, MethodKind
from tunesmith.contracts import TrainerParts
from tunesmith.encoders import encode, load_tokenizer
from tunesmith.families.classification.model import build_model
from tunesmith.training.distill import DistillTrainer, add_teacher_columns, distill_data
from tunesmith.training.run import encoder_hooks, train_with_trainer
from tunesmith.training.trainer import compute_metrics, to_dataset


def trainer_parts(cfg: Config, bundle, tokenizer, model, teacher_dir) -> TrainerParts:
    max_len, train_frame, distilled, extra = cfg.model.max_length, bundle.train, None, {}
    if MethodKind(cfg.method.kind) is MethodKind.DISTILL:  # the teacher's logits join the train split
        distilled = distill_data(cfg, bundle, teacher_dir) if teacher_dir else None
        train_frame = distilled.frame if distilled else bundle.train
        extra = {"trainer_cls": DistillTrainer, "trainer_kwargs": {"distill": cfg.method.distill}}
    train_ds = to_dataset(train_frame, bundle.labels, tokenizer, max_len, where="train", encode=encode)
    if distilled is not None:
        train_ds = add_teacher_columns(train_ds, train_frame)
    eval_ds = (to_dataset(bundle.eval, bundle.labels, tokenizer, max_len, where="eval", encode=encode)
               if len(bundle.eval) else None)
    return TrainerParts(train_ds, eval_ds, compute_metrics=compute_metrics, distilled=distilled, **extra)


train = partial(train_with_trainer, encoder_hooks(load_tokenizer, build_model, trainer_parts, with_teacher=True))
