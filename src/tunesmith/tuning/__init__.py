"""tunesmith tuning stage: `tune(cfg) -> TuneResult` (Optuna study over config keys; see docs/CONTRACTS.md)."""

from tunesmith.tuning.study import OptunaPruning, TuneError, TuneResult, tune

__all__ = ["OptunaPruning", "TuneError", "TuneResult", "tune"]
