"""The data stage: `prepare_data(cfg, run_dir) -> DataBundle` (load, check, split, fingerprint, report)."""

from tunesmith.data.bundle import DataBundle
from tunesmith.data.checks import DataChecksFailed
from tunesmith.data.errors import DataError
from tunesmith.data.prepare import prepare_data
from tunesmith.data.report import DataReport
from tunesmith.data.schema import BadRow, BadRowReason

__all__ = ["BadRow", "BadRowReason", "DataBundle", "DataChecksFailed", "DataError", "DataReport", "prepare_data"]
