"""The one exception the data stage raises, and how its messages are shaped."""

from __future__ import annotations

from collections.abc import Sequence


class DataError(ValueError):
    """Data that cannot be used as configured; the message says where (file:line or key path) and what to do."""

    def __init__(self, where: str, problem: str, hint: str | None = None):
        self.where, self.problem, self.hint = where, problem, hint
        text = f"{where}: {problem}"
        super().__init__(f"{text}\n  hint: {hint}" if hint else text)


def quoted(values: Sequence[object], limit: int = 12) -> str:
    """`'a', 'b', 'c' (+3 more)` for messages."""
    shown = ", ".join(repr(str(v)) for v in list(values)[:limit])
    more = len(values) - limit
    return f"{shown} (+{more} more)" if more > 0 else shown
