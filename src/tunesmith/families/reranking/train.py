"""Training a cross-encoder with sentence-transformers' CrossEncoderTrainer: the shared settings, checkpoints, resume,
LoRA handling and model dir of `tunesmith.training.sentence`; the best checkpoint on eval loss (BCE). With
`method.kind: distill` the student learns the teacher's score margins between a query's documents (MarginMSE, the
cross-encoder distillation recipe; x kd_weight) beside the human relevance (BCE, x hard_weight).

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
from tunesmith.training.sentence import SentenceParts, Weighted, train_sentence_model
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
    eval_ds = task.to_dataset(bundle.eval, scale) if len(bundle.eval) else None
    loss = task.build_loss(model, bundle.train)
    if distill:
        train_ds, eval_ds, loss = _with_teacher(cfg, bundle, run_dir, model, train_ds, eval_ds, loss)
    parts = SentenceParts(model, train_ds, eval_ds, loss, CrossEncoderTrainingArguments, CrossEncoderTrainer,
                          task.backbone(model), task.save_adapter, task.merge_adapter,
                          eval_metric="pairs_loss" if isinstance(eval_ds, dict) else "loss")
    return train_sentence_model(cfg, bundle, run_dir, parts, start_from=start_from, callbacks=callbacks)


def _with_teacher(cfg: Config, bundle, run_dir: Path, model, train_ds, eval_ds, loss):
    """MarginMSE on the teacher's margins (x kd_weight) beside the pairs' BCE (x hard_weight), one dataset each;
    eval stays the pairs' loss. Without a teacher (the no-KD comparison): the pairs alone."""
    from sentence_transformers.cross_encoder.losses import MarginMSELoss

    d = cfg.method.distill
    teacher_dir = resolve_teacher(d.teacher, cfg) if needs_teacher(cfg) else None
    if teacher_dir is not None:
        kd_ds = teacher_margins(bundle.train, teacher_dir, cfg)
        if len(kd_ds):
            train_ds = {"distill": kd_ds, **({"pairs": train_ds} if d.hard_weight else {})}
            loss = {"distill": Weighted(MarginMSELoss(model), d.kd_weight), "pairs": Weighted(loss, d.hard_weight)}
            eval_ds = {"pairs": eval_ds} if eval_ds is not None else None
    write_distill_record(run_dir, cfg, teacher_dir, None)
    return train_ds, eval_ds, loss


MAX_TRIPLETS_PER_QUERY = 16


def teacher_margins(train, teacher_dir, cfg: Config):
    """(query, document_a, document_b) triplets with the teacher's logit margin as the label: per query, its most
    relevant document (by the human relevance, ties by the teacher) against each other candidate, at most
    MAX_TRIPLETS_PER_QUERY (seeded). The student learns how far apart the teacher puts them, not just which wins."""
    from datasets import Dataset

    frame = train.reset_index(drop=True)
    p = np.clip(cross_encoder_scores(teacher_dir, cfg, frame, "method.distill.teacher").astype(np.float64), 1e-6,
                1 - 1e-6)
    logit = np.log(p / (1 - p))
    rng = np.random.default_rng(cfg.seed)
    cols: dict[str, list] = {"query": [], "document_a": [], "document_b": [], task.LABEL: []}
    for _, rows in frame.groupby(frame["query"].astype(str), sort=True):
        idx = rows.index.to_numpy()
        if len(idx) < 2:
            continue
        top = max(idx, key=lambda i: (float(frame.at[i, "relevance"]), logit[i]))
        others = [i for i in idx if i != top]
        if len(others) > MAX_TRIPLETS_PER_QUERY:
            others = sorted(rng.choice(others, size=MAX_TRIPLETS_PER_QUERY, replace=False).tolist())
        for i in others:
            cols["query"].append(str(frame.at[top, "query"]))
            cols["document_a"].append(str(frame.at[top, "document"]))
            cols["document_b"].append(str(frame.at[i, "document"]))
            cols[task.LABEL].append(float(logit[top] - logit[i]))
    return Dataset.from_dict(cols)


train_reranker = train
