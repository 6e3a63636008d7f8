"""Load a saved classifier and score it on a split: logits in the data's label order, metrics, paired deltas.

Shared by the tuned-model evaluation and the champion comparison; nothing here writes a file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from transformers import AutoConfig, AutoModelForSequenceClassification

from tunesmith.encoders import load_tokenizer, predict_logits
from tunesmith.evaluation.calibration import expected_calibration_error
from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.metrics import classification_metrics
from tunesmith.evaluation.significance import bootstrap_delta, metric_stats

_MODEL_HINT = "pass a trained model folder such as <run>/model (written by `tunesmith train` or `tunesmith run`)"


def _check_model_dir(path: Path, trust_remote_code: bool) -> None:
    if not path.exists():
        raise EvalError(f"{path}: no such model dir", hint=_MODEL_HINT)
    if not (path / "config.json").is_file():
        what = "is a file, not a folder" if path.is_file() else "has no config.json"
        raise EvalError(f"{path}: not a model dir ({what})", hint=_MODEL_HINT)
    from tunesmith.hub import refuse_pickle_weights

    refuse_pickle_weights(path, key="model_dir")  # tunesmith writes safetensors; a pickle here is someone else's
    try:
        architectures = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code).architectures or []
    except (OSError, ValueError) as exc:
        raise EvalError(f"{path}: config.json cannot be read ({str(exc).splitlines()[0]})", hint=_MODEL_HINT) from None
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise EvalError(f"{path}: a {', '.join(architectures)} without a classification head, not a fine-tuned "
                        "classifier", hint=_MODEL_HINT)


def load_classifier(model_dir: str | Path, *, trust_remote_code: bool = False):
    """A saved sequence classifier (LoRA already merged by training) and its tokenizer.

    Raises:
        EvalError: `model_dir` is missing, not a model dir, has no classification head, or does not load.
    """
    path = Path(model_dir)
    _check_model_dir(path, trust_remote_code)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(  # never unpickle a *.bin from a user's dir
            str(path), trust_remote_code=trust_remote_code, use_safetensors=True)
        tokenizer = load_tokenizer(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:  # missing weights or tokenizer files, a mismatched checkpoint
        raise EvalError(f"{path}: cannot load the classifier ({str(exc).splitlines()[0]})", hint=_MODEL_HINT) from None
    return model.eval(), tokenizer


def model_labels(model) -> list[str]:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def label_order(model, labels: list[str]) -> list[int] | None:
    """Column of each of `labels` in the model's output, or None when the model has another label set."""
    names = model_labels(model)
    if sorted(names) == sorted(labels):
        return [names.index(label) for label in labels]
    if names == [f"LABEL_{i}" for i in range(len(labels))]:  # saved without names: trust the order
        return list(range(len(labels)))
    return None


def frame_logits(model, tokenizer, frame, cfg, order: list[int]) -> np.ndarray:
    """Logits of the model on `frame["text"]`, columns in the data's label order."""
    texts = frame["text"].astype(str).tolist()
    out = predict_logits(model, tokenizer, texts, max_length=cfg.model.max_length,
                                            batch_size=cfg.training.eval_batch_size)
    return out[:, order]


def model_metrics(y: np.ndarray, proba: np.ndarray, labels: list[str], cfg) -> dict:
    """`classification_metrics` plus ece for one model's test probabilities."""
    out = classification_metrics(y, proba, labels, top_k=cfg.evaluation.top_k)
    out["ece"] = expected_calibration_error(proba, y, cfg.evaluation.calibration.bins)
    return out


def paired_deltas(y: np.ndarray, proba_a: np.ndarray, proba_b: np.ndarray, cfg) -> dict[str, dict]:
    """a - b for every scalar metric, each with a paired-bootstrap CI and p-value on the same resamples."""
    boot, ev = cfg.evaluation.bootstrap, cfg.evaluation
    stats_a = metric_stats(y, proba_a, top_k=ev.top_k, bins=ev.calibration.bins)
    stats_b = metric_stats(y, proba_b, top_k=ev.top_k, bins=ev.calibration.bins)
    return {m: bootstrap_delta(len(y), stats_a[m], stats_b[m], samples=boot.samples,
                               confidence=boot.confidence, seed=cfg.seed) for m in stats_a}
