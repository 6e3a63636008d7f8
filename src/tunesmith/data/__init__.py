"""The data stage: `prepare_data(cfg, run_dir) -> DataBundle` (load, check, split, fingerprint, report).

Names load on first use, so a family's row checks can import `tunesmith.data.schema` without pulling in the
whole stage (which calls back into the families).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunesmith.data.bundle import DataBundle
    from tunesmith.data.checks import DataChecksFailed
    from tunesmith.data.errors import DataError
    from tunesmith.data.prepare import prepare_data
    from tunesmith.data.report import DataReport
    from tunesmith.data.schema import BadRow, BadRowReason

_WHERE = {"DataBundle": "bundle", "DataChecksFailed": "checks", "DataError": "errors", "prepare_data": "prepare",
          "DataReport": "report", "BadRow": "schema", "BadRowReason": "schema"}
__all__ = ["BadRow", "BadRowReason", "DataBundle", "DataChecksFailed", "DataError", "DataReport", "prepare_data"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'tunesmith.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tunesmith.data.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
