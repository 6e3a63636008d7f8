"""A classifier's loss on each row (cross-entropy of its label), for the membership-inference attack of
`evaluation.privacy.membership` (tunesmith.evaluation.privacy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.metrics import label_ids
from tunesmith.evaluation.scoring import frame_logits, label_order, load_classifier, model_labels


def row_losses(cfg, model_dir: Path, frame, labels: list[str]) -> np.ndarray:
    """-log p(label | text) of each row of `frame` under the model in `model_dir`."""
    model, tokenizer = load_classifier(model_dir, trust_remote_code=cfg.model.trust_remote_code)
    order = label_order(model, labels)
    if order is None:
        raise EvalError(f"{model_dir}: the model predicts {model_labels(model)}, but the data has labels {labels}",
                        hint="evaluate it with the config (data and data.labels) it was trained with")
    logits = frame_logits(model, tokenizer, frame, cfg, order).astype(np.float64)
    y = label_ids(frame["label"].tolist(), labels)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y]
