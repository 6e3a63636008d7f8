"""Evaluation errors meant for the person who ran the command (no torch import: the CLI maps them to exit 2)."""

from __future__ import annotations


class EvalError(ValueError):
    """A model that cannot be evaluated with this config; the message names the path, the problem and a fix."""

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        super().__init__(f"{message}\n  hint: {hint}" if hint else message)
