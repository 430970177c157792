"""Demos: a model of each task trained end to end on the built-in Shapes set (no download).

:mod:`~fcnlab.demos.common` holds what every demo shares (the Shapes knobs, the engine recipe,
the run's clock and console, ``metrics.json``, the results table); each task's module holds
what it does differently and registers its :class:`Demo` under the task's name with
``@DEMOS.register(name)``. Adding a demo is adding a module here and its import below.
"""

from __future__ import annotations

# Importing a demo's module registers it.
from fcnlab.demos import detection, instance, segmentation  # noqa: F401
from fcnlab.demos.registry import DEMOS, Demo

__all__ = ["DEMOS", "Demo"]
