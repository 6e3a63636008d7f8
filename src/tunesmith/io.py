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
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


# --- directories: written whole or not at all (model dirs, adapters, converted weights) ---------------------


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def recover_dir(final: str | Path) -> bool:
    """Undo a crash inside `atomic_dir`'s swap: if `final` is missing but its `.old-` copy exists, put it back.

    Returns True when something was restored.
    """
    final = Path(final)
    old = final.with_name(f".old-{final.name}")
    if final.exists() or not old.is_dir():
        return False
    os.replace(old, final)  # the previous content, whole: the swap had only moved it aside
    fsync_path(final.parent)
    return True


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temp dir beside `final`; on success it replaces `final` (old content dropped).

    The swap is two renames (`final` -> `.old-final`, `.tmp-final` -> `final`), so a crash between them
    leaves `final` missing; `recover_dir` (run here first, and callable by readers) moves `.old-` back.
    Only then are leftovers of an interrupted call deleted, never the last copy of `final`.
    """
    final = Path(final)
    tmp = final.with_name(f".tmp-{final.name}")
    old = final.with_name(f".old-{final.name}")
    recover_dir(final)
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        os.replace(final, old)  # a directory cannot be renamed over a non-empty one
    os.replace(tmp, final)
    fsync_path(final.parent)
    shutil.rmtree(old, ignore_errors=True)
