"""Comparing answers that went through JSON (a route's, an MLflow server's) with Python ones."""

from __future__ import annotations

import math


def close(a, b, tol: float = 1e-5, *, shared_keys: bool = False) -> bool:
    """Equal, floats within `tol`; a key set to null counts as absent (`labels` of a single-label result). With
    `shared_keys`, dicts are compared on the keys both have (a server that adds its own fields)."""
    if isinstance(a, dict) and isinstance(b, dict):
        a, b = ({k: v for k, v in d.items() if v is not None} for d in (a, b))
        keys = a.keys() & b.keys() if shared_keys else a.keys()
        if not (keys if shared_keys else a.keys() == b.keys()):
            return False
        return all(close(a[k], b[k], tol, shared_keys=shared_keys) for k in keys)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y, tol, shared_keys=shared_keys) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    return a == b
