"""The task registry: task names to :class:`~fcnlab.tasks.base.Task` objects, and the task of a
model (its class's ``task`` attribute; a model without one segments)."""

from __future__ import annotations

from functools import cache

from torch import nn

from fcnlab.registry import Registry
from fcnlab.tasks.base import Task

TASKS: Registry[Task] = Registry("task")
#: The task of a model whose class declares none: every segmentation architecture.
DEFAULT_TASK = "segmentation"


def register_task(task: type) -> type:
    """Class decorator: register a :class:`Task` implementation under its ``name``."""
    TASKS.register(task.name)(task)
    return task


@cache
def get_task(name: str) -> Task:
    """The task called ``name`` (one shared instance: tasks hold no state)."""
    return TASKS.build(name)


def task_names() -> list[str]:
    """The registered task names, sorted."""
    return TASKS.names()


def task_of(model: nn.Module) -> Task:
    """The task ``model`` solves: its ``task`` attribute, the default task when it has none."""
    name = getattr(model, "task", DEFAULT_TASK)
    if name not in TASKS:
        raise ValueError(
            f"model {type(model).__name__} has task {name!r}; known tasks: "
            f"{', '.join(task_names())}"
        )
    return get_task(name)


def task_of_model_name(name: str) -> Task:
    """The task of the model that ``build_model(name, ...)`` builds, without building it."""
    from fcnlab.models import model_task

    return get_task(model_task(name))
