"""tunesmith training stage: `train(cfg, bundle, run_dir) -> TrainResult` (see docs/CONTRACTS.md)."""

from tunesmith.training.checkpoints import find_last_complete_checkpoint
from tunesmith.training.methods import MethodError, apply_method, count_params
from tunesmith.training.run import TrainResult, check_resumable, train
from tunesmith.training.trainer import TrainingError, resolve_precision

__all__ = [
    "MethodError",
    "TrainResult",
    "TrainingError",
    "apply_method",
    "check_resumable",
    "count_params",
    "find_last_complete_checkpoint",
    "resolve_precision",
    "train",
]
