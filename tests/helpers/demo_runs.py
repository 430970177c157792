"""Run a demo's quick version once for a test module, keeping what it printed."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console


@dataclass(frozen=True)
class QuickRun:
    """A finished quick demo: its run folder, the summary it returned and what it printed."""

    run_dir: Path
    summary: dict[str, Any]
    printed: str


def run_quick(run: Callable[..., dict[str, Any]], out: Path, run_name: str) -> QuickRun:
    """``run(quick=True)`` into ``out`` with a wide console writing to a string."""
    printed = io.StringIO()
    summary = run(quick=True, output_root=str(out), console=Console(file=printed, width=200))
    return QuickRun(out / run_name, summary, printed.getvalue())
