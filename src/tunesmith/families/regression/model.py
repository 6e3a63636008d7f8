"""Text regression: one numeric target per text, a 1-output sequence-classification head (problem_type regression).

Targets are standardized on the train split for training (so the head learns O(1) outputs whatever the target's
unit), and the train mean / std are folded into the head's last linear layer before saving: the saved model predicts
in the target's own unit, and `pipeline("text-classification", function_to_apply="none")` returns that number.
Loss: MSE, or Huber (`regression.loss: huber`), on the standardized scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from tunesmith.config import Config, RegressionLoss
from tunesmith.contracts import TrainerParts
from tunesmith.encoders import embed, encode, predict_logits
from tunesmith.encoders import load_tokenizer as _load_tokenizer

__all__ = ["build_model", "embed", "fold_target_scaling", "load_tokenizer", "predict", "target_stats", "trainer_parts"]
TARGET_NAME = "score"  # id2label of the single output


def load_tokenizer(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False):
    return _load_tokenizer(model_path, revision=revision, trust_remote_code=trust_remote_code)


def build_model(model_path: str, labels: Sequence[str] = (), *, revision: str | None = None,
                trust_remote_code: bool = False):
    """The base with a fresh 1-output regression head (labels are unused: there are no classes)."""
    return AutoModelForSequenceClassification.from_pretrained(
        model_path, revision=revision, num_labels=1, problem_type="regression", id2label={0: TARGET_NAME},
        label2id={TARGET_NAME: 0}, trust_remote_code=trust_remote_code, ignore_mismatched_sizes=True,
    )


def target_stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation of the train targets (std 1 when they are all equal)."""
    x = np.asarray(values, dtype=np.float64)
    std = float(x.std()) if len(x) > 1 else 0.0
    return float(x.mean()) if len(x) else 0.0, std if std > 0 else 1.0


def _dataset(frame, tokenizer, max_length: int, mean: float, std: float) -> Dataset:
    enc = dict(encode(tokenizer, frame["text"].astype(str).tolist(), max_length))
    enc["labels"] = [(float(y) - mean) / std for y in frame["target"]]
    enc["length"] = [len(ids) for ids in enc["input_ids"]]
    return Dataset.from_dict(enc)


def regression_scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """mae, rmse, mse, r2, spearman, pearson of predictions against targets (one implementation for all stages)."""
    from scipy.stats import pearsonr, spearmanr

    pred, y = np.asarray(pred, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    err = pred - y
    mse = float((err**2).mean()) if len(y) else float("nan")
    var = float(((y - y.mean()) ** 2).mean()) if len(y) else float("nan")
    varied = len(y) > 1 and np.ptp(y) > 0 and np.ptp(pred) > 0
    return {
        "mae": float(np.abs(err).mean()) if len(y) else float("nan"), "rmse": float(np.sqrt(mse)), "mse": mse,
        "r2": 1.0 - mse / var if var and var > 0 else float("nan"),
        "spearman": float(spearmanr(pred, y).statistic) if varied else float("nan"),
        "pearson": float(pearsonr(pred, y).statistic) if varied else float("nan"),
    }


class HuberOnStandardized:
    """A `compute_loss_func`: Huber loss of the standardized prediction (MSE is the model's own loss)."""

    def __init__(self, delta: float):
        self.delta = delta

    def __call__(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        return torch.nn.functional.huber_loss(logits.float().view(-1), labels.float().view(-1), delta=self.delta)


def trainer_parts(cfg: Config, bundle, tokenizer, model=None, teacher_dir=None) -> TrainerParts:
    """Standardized float labels, dynamic padding, metrics in the target's unit, the configured loss; with
    `method.kind: distill` the teacher's predictions (standardized like the targets) beside each row, and the
    texts of `method.distill.unlabeled` with the teacher's value as their target."""
    from tunesmith.config import MethodKind

    mean, std = target_stats(bundle.train["target"])
    max_len = cfg.model.max_length
    train_frame, distilled, extra = bundle.train, None, {}
    if MethodKind(cfg.method.kind) is MethodKind.DISTILL:
        from tunesmith.training.distill import DistillTrainer, distill_data, regression_kd_loss

        if teacher_dir is not None:
            def teach(texts):
                teacher, teacher_tok = load_regressor(teacher_dir, cfg, "method.distill.teacher")
                values = predict(teacher, teacher_tok, texts, max_length=max_len, batch_size=cfg.training.eval_batch_size)
                return (values[:, None] - mean) / std

            distilled = distill_data(cfg, bundle, teacher_dir, teach=teach, target="target",
                                     synthetic_target=lambda z: float(z[0] * std + mean))
            train_frame = distilled.frame
        extra = {"trainer_cls": DistillTrainer, "trainer_kwargs": {"distill": cfg.method.distill,
                                                                   "kd_loss": regression_kd_loss}}
    train_ds = _dataset(train_frame, tokenizer, max_len, mean, std)
    if distilled is not None:
        from tunesmith.training.distill import add_teacher_columns

        train_ds = add_teacher_columns(train_ds, train_frame)
    eval_ds = _dataset(bundle.eval, tokenizer, max_len, mean, std) if len(bundle.eval) else None

    def compute_metrics(eval_pred) -> dict[str, float]:
        logits = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        scores = regression_scores(np.asarray(logits).reshape(-1) * std + mean,
                                   np.asarray(eval_pred.label_ids).reshape(-1) * std + mean)
        return {k: scores[k] for k in ("rmse", "mae", "spearman", "pearson")}

    loss = HuberOnStandardized(cfg.regression.huber_delta) if cfg.regression.loss is RegressionLoss.HUBER else None
    return TrainerParts(train_ds, eval_ds, data_collator=DataCollatorWithPadding(tokenizer),
                        compute_metrics=compute_metrics, compute_loss_func=loss, distilled=distilled, **extra)


def fold_target_scaling(model, mean: float, std: float) -> int:
    """Make the head predict `z * std + mean`: scale the weight and bias of every 1-output linear layer of the head.

    Returns how many layers were folded (a LoRA model's head has a trained copy beside the original).
    """
    from tunesmith.training.methods import head_module_names

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    folded = 0
    with torch.no_grad():
        for head in head_module_names(inner):
            for module in getattr(inner, head).modules():
                if isinstance(module, torch.nn.Linear) and module.out_features == 1:
                    module.weight.mul_(std)
                    if module.bias is not None:
                        module.bias.mul_(std).add_(mean)
                    folded += 1
    if not folded:
        raise ValueError(f"cannot find the 1-output linear layer of {type(inner).__name__}'s head to rescale")
    return folded


def finalize_model(model, cfg: Config, bundle) -> None:
    """The training stage's hook before saving: predictions in the target's unit (see the module docstring)."""
    mean, std = target_stats(bundle.train["target"])
    fold_target_scaling(model, mean, std)
    model.config.tunesmith_target = {"column": cfg.data.label_column, "train_mean": mean, "train_std": std}


def load_regressor(model_dir, cfg: Config, key: str):
    """A saved regressor and its tokenizer (`key` names it in errors): a 1-output model, else ValueError."""
    from transformers import AutoTokenizer

    from tunesmith.hub import loading

    with loading(str(model_dir), key=key):
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=cfg.model.trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir),
                                                                   trust_remote_code=cfg.model.trust_remote_code)
    if model.config.num_labels != 1:
        raise ValueError(f"{key}: {model_dir} has {model.config.num_labels} outputs; a regressor has 1")
    return model, tokenizer


def predict(model, tokenizer, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64) -> np.ndarray:
    """One float per text, in input order, in the target's unit."""
    return predict_logits(model, tokenizer, texts, max_length=max_length, batch_size=batch_size).reshape(-1)
