"""A multi-label classifier's loss on each row (binary cross-entropy averaged over the labels), for the
membership-inference attack of `evaluation.privacy.membership`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.families.multilabel.evaluate import load_multilabel, model_proba
from tunesmith.families.multilabel.rows import multi_hot


def row_losses(cfg, model_dir: Path, frame, labels: list[str]) -> np.ndarray:
    model, tokenizer = load_multilabel(model_dir, cfg, "model_dir")
    p = np.clip(model_proba(model, tokenizer, frame, cfg, labels, model_dir), 1e-7, 1 - 1e-7)
    y = multi_hot(frame, labels)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
