"""Multi-label text classification: a sequence-classification head with one sigmoid output per label, trained with
BCE-with-logits (transformers' `problem_type="multi_label_classification"`).

The saved config carries that problem_type, so `pipeline("text-classification", model=path, top_k=None)` returns a
sigmoid score per label unchanged. `training.class_weights: true` weights each label's positives by
negatives / positives in train (BCE `pos_weight`), so rare labels are not drowned by the all-negative majority.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from tunesmith.config import Config
from tunesmith.contracts import TrainerParts
from tunesmith.encoders import embed, encode, predict_logits
from tunesmith.encoders import load_tokenizer as _load_tokenizer
from tunesmith.families.multilabel.rows import multi_hot

__all__ = ["build_model", "embed", "load_tokenizer", "multilabel_scores", "pos_weight", "predict_proba", "trainer_parts"]
MAX_POS_WEIGHT = 100.0  # a label with 1 positive in 10k rows would otherwise get a weight that blows up the loss


def load_tokenizer(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False):
    return _load_tokenizer(model_path, revision=revision, trust_remote_code=trust_remote_code)


def build_model(model_path: str, labels: Sequence[str], *, revision: str | None = None,
                trust_remote_code: bool = False):
    """The base with a fresh head of len(labels) sigmoid outputs (id2label kept in its config)."""
    return AutoModelForSequenceClassification.from_pretrained(
        model_path, revision=revision, num_labels=len(labels), problem_type="multi_label_classification",
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
        trust_remote_code=trust_remote_code, ignore_mismatched_sizes=True,
    )


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))


def multilabel_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """micro/macro F1, micro precision/recall, subset accuracy and Hamming loss of 0/1 predictions (n, L)."""
    y, pred = np.asarray(y) > 0.5, np.asarray(pred) > 0.5
    tp, fp, fn = (y & pred).sum(0), (~y & pred).sum(0), (y & ~pred).sum(0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 1.0)  # a label never present nor predicted: perfect
    micro_denom = 2 * tp.sum() + fp.sum() + fn.sum()
    return {
        "micro_f1": float(2 * tp.sum() / micro_denom) if micro_denom else 1.0,
        "macro_f1": float(f1.mean()) if len(f1) else float("nan"),
        "micro_precision": float(tp.sum() / max(tp.sum() + fp.sum(), 1)),
        "micro_recall": float(tp.sum() / max(tp.sum() + fn.sum(), 1)),
        "subset_accuracy": float((y == pred).all(axis=1).mean()) if len(y) else float("nan"),
        "hamming_loss": float((y != pred).mean()) if y.size else float("nan"),
    }


def pos_weight(y: np.ndarray) -> torch.Tensor:
    """negatives / positives per label (1 for a label without positives), capped at MAX_POS_WEIGHT."""
    pos = y.sum(axis=0)
    w = np.where(pos > 0, (len(y) - pos) / np.maximum(pos, 1), 1.0)
    return torch.tensor(np.clip(w, 1e-3, MAX_POS_WEIGHT), dtype=torch.float32)


class WeightedBCE:
    """A `compute_loss_func`: BCE-with-logits with a positive-class weight per label, mean over all cells."""

    def __init__(self, weights: torch.Tensor):
        self.weights = weights

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits.float(), labels.float(), pos_weight=self.weights.to(logits.device))


def _dataset(frame, labels: Sequence[str], tokenizer, max_length: int) -> Dataset:
    enc = dict(encode(tokenizer, frame["text"].astype(str).tolist(), max_length))
    enc["labels"] = multi_hot(frame, labels).tolist()
    enc["length"] = [len(ids) for ids in enc["input_ids"]]
    return Dataset.from_dict(enc)


def compute_metrics(eval_pred) -> dict[str, float]:
    """micro_f1, macro_f1 and subset_accuracy at threshold 0.5 (the tuned thresholds come later, from eval)."""
    logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
    scores = multilabel_scores(np.asarray(eval_pred.label_ids), sigmoid(logits) >= 0.5)
    return {k: scores[k] for k in ("micro_f1", "macro_f1", "subset_accuracy")}


def trainer_parts(cfg: Config, bundle, tokenizer) -> TrainerParts:
    """Multi-hot float labels, dynamic padding, micro/macro F1 on eval, BCE (pos_weight with class_weights)."""
    labels, max_len = list(bundle.labels), cfg.model.max_length
    train_ds = _dataset(bundle.train, labels, tokenizer, max_len)
    eval_ds = _dataset(bundle.eval, labels, tokenizer, max_len) if len(bundle.eval) else None
    loss = WeightedBCE(pos_weight(multi_hot(bundle.train, labels))) if cfg.training.class_weights else None
    return TrainerParts(train_ds, eval_ds, data_collator=DataCollatorWithPadding(tokenizer),
                        compute_metrics=compute_metrics, compute_loss_func=loss)


def predict_proba(model, tokenizer, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """P(label) per text and label, (n, num_labels), in input order."""
    return sigmoid(predict_logits(model, tokenizer, texts, max_length=max_length, batch_size=batch_size))
