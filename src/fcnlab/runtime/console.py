"""What the commands print beside their results: literal lines and progress.

* :func:`print_literal` prints a line as it is: no rich markup (a file named ``set[v2]/a.jpg``
  keeps its brackets) and no wrapping (a long path stays whole, for copying and for ``grep``).
* :class:`Bars` draws progress bars for the long loops outside training (evaluation batches,
  predicted images, sliding windows), :func:`status` a spinner (export). They are drawn only on
  a terminal and never under CI, as the trainer's, so piped output, logs and tests stay line for
  line the same. The loops themselves take plain callables (an iterable wrapper, a
  ``(done, total)`` callback) and know nothing of rich.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")


def print_literal(console: Console, line: RenderableType) -> None:
    """Print ``line`` on ``console`` as it is: a string's brackets are text, not markup, and
    nothing is wrapped (a ``Text`` keeps its own styles)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def error_line(message: str) -> Text:
    """``error: message``, the word in bold red on a terminal, the message literal."""
    return Text.assemble(("error:", "bold red"), " ", message)


def progress_wanted(console: Console) -> bool:
    """Whether to draw progress on ``console``: a terminal, and ``CI`` not set."""
    return console.is_terminal and os.environ.get("CI", "").lower() not in ("1", "true", "yes")


class Bars:
    """Progress bars on ``console``, all in one live display (rich draws one at a time), shown
    when ``enabled`` (default: :func:`progress_wanted`); a context manager. Disabled, every
    method still works and draws nothing."""

    def __init__(self, console: Console, enabled: bool | None = None) -> None:
        self.enabled = progress_wanted(console) if enabled is None else enabled
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.enabled,
            transient=True,
        )

    def __enter__(self) -> Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def track(self, items: Iterable[T], description: str) -> Iterator[T]:
        """``items`` one by one, advancing a bar (of ``len(items)`` where it has one)."""
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        task = self.progress.add_task(description, total=total)
        try:
            for item in items:
                yield item
                self.progress.advance(task)
        finally:
            self.progress.remove_task(task)

    def counter(self, description: str) -> Callable[[int, int], None]:
        """A ``(done, total)`` callback that moves a bar of its own (the windows of one image),
        taken down when ``done`` reaches ``total`` and drawn afresh by the next call."""
        task: TaskID | None = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = self.progress.add_task(description, total=total)
            self.progress.update(task, completed=done, total=total)
            if done >= total:
                self.progress.remove_task(task)
                task = None

        return update


def status(console: Console, text: str) -> contextlib.AbstractContextManager[Any]:
    """A spinner with ``text`` (literal, as :func:`print_literal`) while the block runs
    (``fcnlab export``), where progress is wanted; nothing otherwise."""
    if not progress_wanted(console):
        return contextlib.nullcontext()
    return console.status(Text(text))
