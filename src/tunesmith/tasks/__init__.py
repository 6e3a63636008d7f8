"""Task families: one module each, registered in one table.

A task module says how a record becomes model inputs, which head and loss the model gets,
and how a trained model turns texts into predictions. Adding a family is one module plus one
`register_task` line.
"""

from __future__ import annotations

from types import ModuleType

from tunesmith.config import TaskKind

_TASKS: dict[TaskKind, ModuleType] = {}


def register_task(kind: TaskKind, module: ModuleType) -> None:
    if kind in _TASKS:
        raise ValueError(f"task {kind.value!r} is already registered by {_TASKS[kind].__name__}")
    _TASKS[kind] = module


def get_task(kind: TaskKind | str) -> ModuleType:
    kind = TaskKind(kind)
    if kind not in _TASKS:
        raise KeyError(f"no task module registered for {kind.value!r}")
    return _TASKS[kind]


from tunesmith.families.causal_lm import model as causal_lm  # noqa: E402
from tunesmith.families.classification import model as classification  # noqa: E402

register_task(TaskKind.CLASSIFICATION, classification)
register_task(TaskKind.CAUSAL_LM, causal_lm)

from tunesmith.families.embedding import model as embedding  # noqa: E402
from tunesmith.families.regression import model as regression  # noqa: E402

register_task(TaskKind.EMBEDDING, embedding)
register_task(TaskKind.REGRESSION, regression)

from tunesmith.families.token_classification import model as token_classification  # noqa: E402

register_task(TaskKind.TOKEN_CLASSIFICATION, token_classification)

from tunesmith.families.reranking import model as reranking  # noqa: E402

register_task(TaskKind.RERANKING, reranking)


def task_for(cfg) -> ModuleType:
    """The task module of a config: `get_task(cfg.task)`, except multi-label classification (data.multi_label)."""
    if TaskKind(cfg.task) is TaskKind.CLASSIFICATION and getattr(cfg.data, "multi_label", False):
        from tunesmith.families.multilabel import model as multilabel

        return multilabel
    return get_task(cfg.task)
