"""The data-set registry: ``build_dataset(name, ...)`` looks builders up by name.

Every builder is called as ``builder(root=..., split=..., transforms=..., **options)``; data sets
that need no files (``shapes``) accept and ignore ``root``. Registering a data set is adding a file
with ``@DATASETS.register("name")`` on its class or builder function.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcnlab.registry import Registry

DATASETS: Registry[Any] = Registry("data set")


def build_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    transforms: Callable[..., Any] | None = None,
    **options: Any,
) -> Any:
    """Build the data set registered under ``name`` (see ``list_datasets()``)."""
    return DATASETS.build(name, root=root, split=split, transforms=transforms, **options)


def list_datasets() -> list[str]:
    """Names accepted by ``build_dataset``, sorted."""
    return DATASETS.names()
