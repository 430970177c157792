"""One package per task. :mod:`fcnlab.tasks.base` says what a task is; each sub-package
(``segmentation/``, ``detection/``, ``instance/``) implements it and registers itself with
``@register_task``. Everything else asks ``task_of(model)`` or ``get_task(name)``.

Adding a task is adding a folder here with a ``task.py`` whose class carries
``@register_task``, and one import line below.
"""

from __future__ import annotations

from fcnlab.tasks import detection, instance, segmentation
from fcnlab.tasks.base import (
    EvalSettings,
    Evaluation,
    Evaluator,
    Task,
    class_names,
    run_evaluation,
)
from fcnlab.tasks.registry import (
    DEFAULT_TASK,
    TASKS,
    get_task,
    register_task,
    task_names,
    task_of,
    task_of_model_name,
)

__all__ = [
    "DEFAULT_TASK",
    "TASKS",
    "EvalSettings",
    "Evaluation",
    "Evaluator",
    "Task",
    "class_names",
    "detection",
    "get_task",
    "instance",
    "register_task",
    "run_evaluation",
    "segmentation",
    "task_names",
    "task_of",
    "task_of_model_name",
]
