"""The data-set registry: ``build_dataset(name, ..., task=...)`` looks a data set's task view up.

A data set is one on-disk format (or the generated ``shapes``) and may give several task views of
the same files: ``voc`` gives class maps for segmentation and boxes for detection. Each view is
registered where its format is read, with ``@DATASETS.register("voc", task="detection")`` on its
class or builder function (``task`` defaults to ``DEFAULT_TASK``); the registry learns the task
names from these registrations, so adding a view for a new task is adding one decorated class.

Every builder is called as ``builder(root=..., split=..., transforms=..., **options)``; data sets
that need no files (``shapes``) accept and ignore ``root``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Builder = Callable[..., Any]

#: The view a data set gives when no task is named: pixel class maps, fcnlab's first task.
DEFAULT_TASK = "segmentation"


class DatasetRegistry:
    """Builders keyed by data set name and task view; ``register`` is a decorator."""

    def __init__(self) -> None:
        self._views: dict[str, dict[str, Builder]] = {}

    def register(self, name: str, task: str = DEFAULT_TASK) -> Callable[[Builder], Builder]:
        """Decorator that registers a builder as data set ``name``'s view for ``task``."""

        def decorate(builder: Builder) -> Builder:
            views = self._views.setdefault(task, {})
            if name in views:
                raise ValueError(f"data set {name!r} has two views registered for task={task!r}")
            views[name] = builder
            return builder

        return decorate

    def tasks(self) -> list[str]:
        """The task names that have at least one data set, sorted."""
        return sorted(self._views)

    def names(self, task: str | None = None) -> list[str]:
        """The data sets with a view for ``task`` (None: every data set), sorted; none for a
        task that no data set serves."""
        if task is None:
            return sorted({name for views in self._views.values() for name in views})
        return sorted(self._views.get(task, {}))

    def get(self, name: str, task: str | None = None) -> Builder:
        """The builder of data set ``name``'s view for ``task`` (None: ``DEFAULT_TASK``).

        An unknown name is a KeyError listing the known data sets; an unknown task, or a data set
        without that view, a ValueError naming the data sets that have it.
        """
        task = DEFAULT_TASK if task is None else task
        views = self._task_views(task)
        if name in views:
            return views[name]
        if name in self.names():
            raise ValueError(
                f"data set {name!r} has no {task} annotations; "
                f"the data sets for task={task!r} are {', '.join(sorted(views))}"
            )
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(self.names()) or 'none'}")

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def _task_views(self, task: str) -> dict[str, Builder]:
        if task not in self._views:
            expected = ", ".join(map(repr, self.tasks()))
            raise ValueError(f"task={task!r}: expected one of {expected}")
        return self._views[task]


DATASETS = DatasetRegistry()


def build_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    transforms: Callable[..., Any] | None = None,
    task: str | None = None,
    **options: Any,
) -> Any:
    """Build data set ``name``'s view for ``task`` (None: ``DEFAULT_TASK``, class maps): the
    segmentation view gives ``(image, mask)`` samples, the detection view ``(image, target)``
    samples with boxes (:mod:`fcnlab.data.targets`). ``list_datasets(task)`` names the data sets
    with that view."""
    builder = DATASETS.get(name, task)
    return builder(root=root, split=split, transforms=transforms, **options)


def list_datasets(task: str | None = DEFAULT_TASK) -> list[str]:
    """Names accepted by ``build_dataset`` for ``task`` (None: every data set), sorted; empty
    for a task that no data set serves yet (``dataset_tasks()`` names those that have some)."""
    return DATASETS.names(task)


def dataset_tasks() -> list[str]:
    """The task names that have at least one data set view, sorted."""
    return DATASETS.tasks()
