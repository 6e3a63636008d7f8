"""Training a cross-encoder with sentence-transformers' CrossEncoderTrainer: the shared settings, checkpoints, resume,
LoRA handling and model dir of `tunesmith.training.sentence`; the best checkpoint on eval loss (BCE).

    result = train(cfg, bundle, run_dir, resolved, start_from=None, callbacks=())
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tunesmith.config import Config
from tunesmith.families.reranking import model as task
from tunesmith.hub import ResolvedModel, loading
from tunesmith.training.sentence import SentenceParts, train_sentence_model
from tunesmith.training.trainer import TrainingError


def train(cfg: Config, bundle, run_dir: Path, resolved: ResolvedModel, *, start_from: Path | None,
          callbacks: Sequence = ()):
    """Fine-tune a cross-encoder from `resolved` on bundle.train and save run_dir/model as a CrossEncoder dir."""
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments

    if not (bundle.train["relevance"] > 0).any():
        raise TrainingError("no train row has relevance > 0: a reranker needs relevant documents to learn from")
    with loading(resolved, key="model.base", allow_pickle=cfg.model.allow_pickle_weights):
        model = task.load_model(resolved.path, cfg, revision=resolved.revision)
    model = task.apply_method(model, cfg.method)
    scale = task.max_relevance(bundle.train)
    train_ds = task.to_dataset(bundle.train, scale)
    eval_ds = task.to_dataset(bundle.eval, scale) if len(bundle.eval) else None
    parts = SentenceParts(model, train_ds, eval_ds, task.build_loss(model, bundle.train), CrossEncoderTrainingArguments,
                          CrossEncoderTrainer, task.backbone(model), task.save_adapter, task.merge_adapter)
    return train_sentence_model(cfg, bundle, run_dir, parts, start_from=start_from, callbacks=callbacks)


train_reranker = train
