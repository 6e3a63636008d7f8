"""A regressor's loss on each row (squared error in the target's unit), for the membership-inference attack of
`evaluation.privacy.membership`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.families.regression.evaluate import predict_values


def row_losses(cfg, model_dir: Path, frame, _labels) -> np.ndarray:
    pred = predict_values(model_dir, cfg, "model_dir", frame["text"].astype(str).tolist())
    return (pred - frame["target"].astype(float).to_numpy()) ** 2
