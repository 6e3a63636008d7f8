"""Uploads for fine-tuning: checked line by line when they arrive, so a bad file fails at upload, not in a job.

A `fine-tune` file must be UTF-8 JSON Lines of chat rows (OpenAI `messages`, prompt/completion, Alpaca or
ShareGPT, as `tunesmith.families.causal_lm.rows` reads them): the first bad line rejects the file with its line number and the
reason (`wrong_role`, `empty_assistant`, ...). An accepted file gets quick data gates (exact duplicate
conversations, regex PII) as its `status_details`; the full gates (near duplicates, Presidio, leakage between the
training and validation files, length) run again when a job starts, through the same `tunesmith run` pipeline.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from tunesmith.config import ChatFormat
from tunesmith.data.errors import DataError
from tunesmith.families.causal_lm.rows import RowProblem, canonical_text, detect_format, to_messages

PURPOSES = ("fine-tune", "batch", "assistants", "user_data", "evals")


@dataclass
class UploadError(Exception):
    """An upload refused, answered in the provider's error shape with this HTTP status."""

    status: int
    message: str
    code: str
    param: str | None = "file"

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": "invalid_request_error", "param": self.param,
                          "code": self.code}}


MAX_DEPTH = 32  # JSON nesting a chat row never needs; deeper is refused before it can exhaust the stack


def check_upload(data: bytes, *, filename: str, purpose: str, max_bytes: int, size: int | None = None) -> dict:
    """The `tunesmith` block of an accepted file (rows, format, quick gates); raises UploadError otherwise.

    `size` is the upload's whole size when known (`data` may stop at max_bytes + 1)."""
    if purpose not in PURPOSES:
        raise UploadError(400, f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}", "invalid_purpose", "purpose")
    if len(data) > max_bytes:
        what = f"{size} bytes" if size is not None and size > max_bytes else f"more than {max_bytes} bytes"
        raise UploadError(413, f"{filename} is {what}; this key may upload at most {max_bytes} bytes",
                          "file_too_large")
    if purpose != "fine-tune":
        return {"rows": None, "checks": {}}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UploadError(400, f"{filename}:{line}: not UTF-8 text ({exc.reason})", "invalid_file_format") from None
    rows, fmt, digests, pii = 0, None, Counter(), Counter()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if _depth_over(line, MAX_DEPTH):
            raise UploadError(400, f"{filename}:{n}: JSON nested deeper than {MAX_DEPTH} levels; a chat row "
                              "needs a few", "invalid_file_format")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UploadError(400, f"{filename}:{n}: not a JSON object per line (JSONL): {exc.msg}",
                              "invalid_file_format") from None
        except (ValueError, RecursionError) as exc:  # an integer of thousands of digits, say
            raise UploadError(400, f"{filename}:{n}: a JSON value this API does not read ({exc})"[:300],
                              "invalid_file_format") from None
        if not isinstance(row, dict):
            raise UploadError(400, f"{filename}:{n}: a JSONL line must be an object, got {type(row).__name__}",
                              "invalid_file_format")
        try:
            fmt = fmt or detect_format(list(row), ChatFormat.AUTO, f"{filename}:{n}")
            messages, tools = to_messages(row, fmt)
        except RowProblem as exc:
            raise UploadError(400, f"{filename}:{n}: {exc.reason.value}: {exc}", "invalid_training_row") from None
        except DataError as exc:
            raise UploadError(400, f"{filename}:{n}: {exc}", "invalid_training_row") from None
        rows += 1
        joined = canonical_text(messages, tools)
        digests[" ".join(joined.lower().split())] += 1
        pii.update(f.type.value if hasattr(f.type, "value") else str(f.type) for f in _pii(joined))
    if rows == 0:
        raise UploadError(400, f"{filename}: no training rows (the file is empty)", "invalid_file_format")
    duplicates = sum(c - 1 for c in digests.values() if c > 1)
    return {"rows": rows, "format": fmt.value if fmt else None,
            "checks": {"duplicates": {"rows": duplicates, "status": "warn" if duplicates else "pass"},
                       "pii_regex": {"by_type": dict(pii), "status": "warn" if pii else "pass"}}}


def _depth_over(line: str, limit: int) -> bool:
    """True when brackets outside strings nest deeper than `limit` (a linear scan, no recursion)."""
    if line.count("[") + line.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in line:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def status_details(info: dict) -> str | None:
    """One line for the file object: what the quick gates found (None when nothing)."""
    checks = info.get("checks") or {}
    parts = [f"{info['rows']} {info.get('format')} rows"] if info.get("rows") else []
    if checks.get("duplicates", {}).get("rows"):
        parts.append(f"duplicates: {checks['duplicates']['rows']} repeated conversations")
    if checks.get("pii_regex", {}).get("by_type"):
        parts.append("pii: " + ", ".join(f"{k} {v}" for k, v in checks["pii_regex"]["by_type"].items()))
    return "; ".join(parts) or None


def _pii(text: str):
    from tunesmith.data.pii import scan

    return scan(text)
