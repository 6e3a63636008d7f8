"""Training a cross-encoder with sentence-transformers' CrossEncoderTrainer: the shared settings, checkpoints, resume,
LoRA handling and model dir of `tunesmith.training.sentence`; the best checkpoint on eval loss (BCE). With
`method.kind: distill` the BCE target blends the teacher's softened relevance with the human one.

    result = train(cfg, bundle, run_dir, resolved, start_from=None, callbacks=())
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tunesmith.config import Config, MethodKind
from tunesmith.families.reranking import model as task
from tunesmith.families.reranking.evaluate import cross_encoder_scores
from tunesmith.hub import ResolvedModel, loading
from tunesmith.training.distill import needs_teacher, resolve_teacher, shrink_layers, write_distill_record
from tunesmith.training.sentence import SentenceParts, train_sentence_model
from tunesmith.training.trainer import TrainingError


def train(cfg: Config, bundle, run_dir: Path, resolved: ResolvedModel, *, start_from: Path | None,
          callbacks: Sequence = ()):
    """Fine-tune a cross-encoder from `resolved` on bundle.train and save run_dir/model as a CrossEncoder dir."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    if not (bundle.train["relevance"] > 0).any():
        raise TrainingError("no train row has relevance > 0: a reranker needs relevant documents to learn from")
    distill = MethodKind(cfg.method.kind) is MethodKind.DISTILL  # the student trains with distill.student_method
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        model = task.load_model(resolved.path, cfg, revision=resolved.revision)
    if distill and cfg.method.distill.student_layers:
        shrink_layers(task.backbone(model), cfg.method.distill.student_layers)
    model = task.apply_method(model, cfg.method.student())
    scale = task.max_relevance(bundle.train)
    train_ds = task.to_dataset(bundle.train, scale)
    if distill:
        teacher_dir = resolve_teacher(cfg.method.distill.teacher, cfg) if needs_teacher(cfg) else None
        if teacher_dir is not None:
            train_ds = distilled_targets(train_ds, bundle.train, teacher_dir, cfg)
        write_distill_record(run_dir, cfg, teacher_dir, None)
    eval_ds = task.to_dataset(bundle.eval, scale) if len(bundle.eval) else None
    parts = SentenceParts(model, train_ds, eval_ds, task.build_loss(model, bundle.train), CrossEncoderTrainingArguments,
                          CrossEncoderTrainer, task.backbone(model), task.save_adapter, task.merge_adapter)
    return train_sentence_model(cfg, bundle, run_dir, parts, start_from=start_from, callbacks=callbacks)


def distilled_targets(dataset, train, teacher_dir, cfg: Config):
    """The student's BCE targets: (kd_weight x the teacher's relevance softened by the temperature + hard_weight x
    the human relevance) / (kd_weight + hard_weight); a binary output's soft target is its KD (Hinton et al.)."""
    d = cfg.method.distill
    p = np.clip(cross_encoder_scores(teacher_dir, cfg, train, "method.distill.teacher").astype(np.float64), 1e-6,
                1 - 1e-6)
    soft = 1.0 / (1.0 + np.exp(-np.log(p / (1 - p)) / d.temperature))  # sigmoid(teacher logit / T)
    human = np.asarray(dataset[task.LABEL], dtype=np.float64)
    target = (d.kd_weight * soft + d.hard_weight * human) / (d.kd_weight + d.hard_weight)
    return dataset.remove_columns(task.LABEL).add_column(task.LABEL, target.tolist())


train_reranker = train
