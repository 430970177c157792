"""The demos ``fcnlab demo --task NAME`` runs, registered under the name of their task."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fcnlab.registry import Registry


@dataclass(frozen=True)
class Demo:
    """A demo as the command line shows it.

    ``run(quick=..., output_root=...)`` runs it and returns its ``metrics.json`` summary;
    ``run_name`` is its run folder under ``output_root``; ``summary`` is one line for
    ``fcnlab --help``, ``description`` a sentence for ``fcnlab demo --help``. ``models`` names
    the models it can train (``fcnlab demo --model``, passed on as ``run(model=...)``), its
    default first; a demo of one fixed model leaves it empty.
    """

    run: Callable[..., dict[str, Any]]
    run_name: str
    summary: str
    description: str
    models: tuple[str, ...] = ()


#: Task name -> a builder of its :class:`Demo` (each demo module registers one).
DEMOS: Registry[Demo] = Registry("demo")
