"""Task families: one package each, registered in one table.

    from tunesmith.families import get, kinds
    task = get("reranking")      # the family object every stage calls (tunesmith.contracts.Task)

A family package builds its `Task` object and calls `register(task)` once in its `__init__`; registering a kind
twice is refused. The built-in families are imported on first use (their modules import torch only when a
stage calls them), so importing this module stays cheap. A family outside tunesmith registers the same way.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunesmith.contracts import Route, Task

# The families that ship with tunesmith, by the package that registers each.
BUILTIN = {
    "classification": "tunesmith.families.classification",
    "multi-label": "tunesmith.families.multilabel",
    "regression": "tunesmith.families.regression",
    "token-classification": "tunesmith.families.token_classification",
    "embedding": "tunesmith.families.embedding",
    "reranking": "tunesmith.families.reranking",
    "causal-lm": "tunesmith.families.causal_lm",
    "image-classification": "tunesmith.families.image_classification",
}

FAMILIES: dict[str, Task] = {}
_lock = threading.RLock()
_loaded = False


class UnknownFamily(KeyError):
    """A `task:` no registered family answers to; the message lists the ones that do."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(task: Task) -> Task:
    """Add a family to the table; a second family with the same kind (or config section) is refused."""
    with _lock:
        if task.kind in FAMILIES:
            raise ValueError(f"task family {task.kind!r} is already registered by "
                             f"{type(FAMILIES[task.kind]).__module__}")
        clash = [t.kind for t in FAMILIES.values() if task.section and t.section == task.section]
        if clash:
            raise ValueError(f"config section {task.section!r} of {task.kind!r} is already {clash[0]!r}'s")
        FAMILIES[task.kind] = task
    return task


def unregister(kind: str) -> None:
    """Remove a family (tests register toy families and take them out again)."""
    with _lock:
        FAMILIES.pop(kind, None)


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        for module in BUILTIN.values():
            importlib.import_module(module)  # each registers itself
        _loaded = True


def get(kind: str) -> Task:
    """The family registered as `kind`; UnknownFamily lists the known ones (with a "did you mean")."""
    _load_builtins()
    task = FAMILIES.get(str(getattr(kind, "value", kind)))
    if task is None:
        close = difflib.get_close_matches(str(kind), list(FAMILIES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownFamily(f"unknown task {kind!r}{hint}; tunesmith knows {', '.join(kinds())}")
    return task


def kinds() -> list[str]:
    """Every registered family: the built-ins in their order, then others in the order they registered."""
    return [t.kind for t in all_families()]


def all_families() -> list[Task]:
    _load_builtins()
    order = list(BUILTIN)
    return sorted(FAMILIES.values(), key=lambda t: order.index(t.kind) if t.kind in order else len(order))


def sections() -> dict[str, type]:
    """Config sections the families own: {"chat": ChatConfig, "embedding": EmbeddingConfig, ...}."""
    return {t.section: t.section_model for t in all_families() if t.section and t.section_model is not None}


def routes() -> dict[str, Route]:
    """Every route a family serves, by path (families that serve the same route share one definition)."""
    out: dict[str, Route] = {}
    for task in all_families():
        for route in task.routes:
            out.setdefault(route.path, route)
    return out
