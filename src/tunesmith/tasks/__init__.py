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


from tunesmith.tasks import causal_lm, classification  # noqa: E402

register_task(TaskKind.CLASSIFICATION, classification)
register_task(TaskKind.CAUSAL_LM, causal_lm)

from tunesmith.tasks import embedding, regression  # noqa: E402

register_task(TaskKind.EMBEDDING, embedding)
register_task(TaskKind.REGRESSION, regression)

from tunesmith.tasks import token_classification  # noqa: E402

register_task(TaskKind.TOKEN_CLASSIFICATION, token_classification)

from tunesmith.tasks import reranking  # noqa: E402

register_task(TaskKind.RERANKING, reranking)


def task_for(cfg) -> ModuleType:
    """The task module of a config: `get_task(cfg.task)`, except multi-label classification (data.multi_label)."""
    if TaskKind(cfg.task) is TaskKind.CLASSIFICATION and getattr(cfg.data, "multi_label", False):
        from tunesmith.tasks import multilabel

        return multilabel
    return get_task(cfg.task)
