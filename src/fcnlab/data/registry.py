"""The data-set registries: ``build_dataset(name, ..., task=...)`` looks builders up by name.

Every builder is called as ``builder(root=..., split=..., transforms=..., **options)``; data sets
that need no files (``shapes``) accept and ignore ``root``. Registering a data set is adding a file
with ``@DATASETS.register("name")`` on its class or builder function, or
``@DETECTION_DATASETS.register("name")`` for one that gives boxes (``task="detection"``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcnlab.registry import Registry

DATASETS: Registry[Any] = Registry("data set")
DETECTION_DATASETS: Registry[Any] = Registry("detection data set")
TASKS = ("segmentation", "detection")


def build_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    transforms: Callable[..., Any] | None = None,
    task: str = "segmentation",
    **options: Any,
) -> Any:
    """Build the data set registered under ``name`` for ``task`` (see ``list_datasets(task)``):
    ``"segmentation"`` gives ``(image, mask)`` samples, ``"detection"`` ``(image, target)``
    samples with boxes (:mod:`fcnlab.data.detection`)."""
    registry = _registry(task)
    if task != "segmentation" and name not in registry and name in DATASETS:
        raise ValueError(
            f"data set {name!r} has no {task} annotations; "
            f"the data sets for task={task!r} are {', '.join(registry.names())}"
        )
    return registry.build(name, root=root, split=split, transforms=transforms, **options)


def list_datasets(task: str = "segmentation") -> list[str]:
    """Names accepted by ``build_dataset`` for ``task``, sorted."""
    return _registry(task).names()


def _registry(task: str) -> Registry[Any]:
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {', '.join(map(repr, TASKS))}")
    return DATASETS if task == "segmentation" else DETECTION_DATASETS
