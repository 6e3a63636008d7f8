"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every run artifact (data_card.json, quarantine.jsonl, metrics.json, ...) goes through these, so a crash
or a kill mid-write cannot leave a truncated file that a later stage would trust.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` via a temp file in the same folder and `os.replace`; creates parent folders."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder and `os.replace`; creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; run artifacts are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def to_jsonable(obj: Any) -> Any:
    """`json.dumps` default: numpy scalars and arrays, paths, enums, dates, dataclasses and sets."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return obj.item()  # numpy scalar
    if hasattr(obj, "tolist"):
        return obj.tolist()  # numpy array
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dt.date | dt.datetime):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def json_safe(value: Any) -> Any:
    """Plain Python values that `json.dumps` writes as strict JSON (NaN and infinities become None).

    NaN is not JSON, and strict readers (browsers, jq) reject it.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, str):
        return json_safe(value.tolist())  # numpy arrays and scalars
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write `obj` as strict JSON (UTF-8, NaN as null, a trailing newline) atomically."""
    text = json.dumps(json_safe(obj), indent=indent, ensure_ascii=False, default=to_jsonable, allow_nan=False)
    return atomic_write_text(path, text + "\n")
