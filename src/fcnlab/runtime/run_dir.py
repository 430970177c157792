"""The run folder: who may write it (a lock), whether it already holds a run, and its log.

A run folder ``output.root/output.name`` holds ``config.yaml``, ``metrics.jsonl``,
``checkpoints/{last,best}.pt``, ``final.safetensors`` and the pictures. :func:`open_run_dir`
takes the folder for one run: it refuses a folder that another live process holds (the lock
file ``run.lock``) and a folder that already holds a run unless the run is resumed or
overwritten, and removes the temporary files a killed atomic write left behind.

``metrics.jsonl`` has one JSON object per line with ``kind`` ``"train"`` (a logging step: loss,
lr, images/s), ``"eval"`` (an evaluation: the task's scores) or ``"stage"`` (a stage starts:
its name; its ``step`` is the stage's first step), plus ``stage``, ``epoch`` and ``step``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fcnlab.runtime.checkpoint import atomic_write

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "run.lock"
# What makes a folder a run's: any of these. ``--overwrite`` removes them and the rest of what
# the engine writes there (pictures of a task, other files and folders are left).
RUN_MARKERS = ("config.yaml", "metrics.jsonl", "checkpoints")
ENGINE_FILES = (*RUN_MARKERS, "final.safetensors", "curves.png", "tensorboard")


class RunFolderError(RuntimeError):
    """A run folder that this run may not use; the message names it and what to do."""


class RunLock:
    """The lock file ``run_dir/run.lock``, holding ``PID HOST`` of the run that writes the folder.

    The file is created atomically (``O_EXCL``) and locked (``flock``); the system drops the lock
    when the process ends, however it ends, so a lock file whose lock is free was left by a run
    that died: it is taken over with a note. :meth:`release` removes the file. (Without
    ``flock``, on Windows, a lock file left behind must be removed by hand.)
    """

    def __init__(self, run_dir: str | Path, note: Callable[[str], None] = print) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None
        while self._fd is None:
            self._fd = self._try_lock(note)

    def _try_lock(self, note: Callable[[str], None]) -> int | None:
        """The locked descriptor of the lock file; None when the file changed meanwhile."""
        try:
            fd, left = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), False
        except FileExistsError:
            try:
                fd, left = os.open(self.path, os.O_RDWR), True
            except FileNotFoundError:  # released meanwhile
                return None
        previous = os.read(fd, 200).decode(errors="replace").split()
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            elif left:
                raise BlockingIOError
        except BlockingIOError:
            os.close(fd)
            holder = f"process {previous[0]} on {previous[1]}" if previous[1:] else "a process"
            raise RunFolderError(
                f"run folder '{self.path.parent}' is in use by {holder} (lock file "
                f"'{self.path}'); wait for that run to end or set output.name to another folder"
            ) from None
        try:  # a run that released the lock meanwhile removed the file we opened
            current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if not current:
            os.close(fd)
            return None
        if left and previous:
            note(
                f"took over the lock file '{self.path}' of process {previous[0]}, which is no "
                "longer running"
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        return fd

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op when already released)."""
        if self._fd is None:
            return
        try:
            if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


def run_files(run_dir: str | Path) -> list[str]:
    """The names of what in ``run_dir`` shows that it holds a run (empty when it does not)."""
    run_dir = Path(run_dir)
    found = [name for name in RUN_MARKERS[:2] if (run_dir / name).is_file()]
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        found += [f"checkpoints/{p.name}" for p in sorted(checkpoints.glob("*.pt"))]
    return found


def remove_orphans(run_dir: str | Path) -> list[Path]:
    """Remove the temporaries ``.NAME.*.tmp`` that an atomic write killed mid-way left in
    ``run_dir`` and ``run_dir/checkpoints``; returns what was removed."""
    run_dir = Path(run_dir)
    removed = []
    for folder in (run_dir, run_dir / "checkpoints"):
        for path in sorted(folder.glob(".*.*.tmp")) if folder.is_dir() else ():
            if path.is_file():
                path.unlink()
                removed.append(path)
    return removed


def open_run_dir(
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    note: Callable[[str], None] = print,
) -> RunLock:
    """Take ``run_dir`` for a run and return its held :class:`RunLock`.

    Refused (:class:`RunFolderError`) when another live run holds the folder, or when it already
    holds a run (see :func:`run_files`) and the run is neither resumed nor ``overwrite``; with
    ``overwrite`` the previous run's files (``ENGINE_FILES``) are removed first. Temporaries of
    killed writes are removed. ``note`` receives what was taken over or removed.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir, note)
    try:
        found = run_files(run_dir)
        if found and not resume:
            if not overwrite and any(name.startswith("checkpoints/") for name in found):
                raise RunFolderError(
                    f"run folder '{run_dir}' already holds a run ({', '.join(found)}); continue "
                    "it with --resume, replace it with --overwrite, or set output.name to a new "
                    "folder"
                )
            if not overwrite:
                raise RunFolderError(
                    f"run folder '{run_dir}' holds a run that wrote no checkpoint "
                    f"({', '.join(found)}); replace it with --overwrite or set output.name to a "
                    "new folder"
                )
            removed = [name for name in ENGINE_FILES if (run_dir / name).exists()]
            for name in removed:
                path = run_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink()
            note(f"--overwrite: removed the previous run's {', '.join(removed)} from '{run_dir}'")
        orphans = remove_orphans(run_dir)
        if orphans:
            names = ", ".join(str(p.relative_to(run_dir)) for p in orphans)
            note(f"removed {len(orphans)} unfinished temporary file(s) of a killed run: {names}")
    except BaseException:
        lock.release()
        raise
    return lock


class RunLog:
    """Appends records to ``run_dir/metrics.jsonl`` and mirrors numbers to TensorBoard when the
    ``tensorboard`` package is installed and ``tensorboard`` is true. Disabled on ranks > 0.

    ``purge_step`` (a resumed run's first step) hides TensorBoard's events from that step on,
    which the resumed run writes again."""

    def __init__(
        self,
        run_dir: str | Path,
        enabled: bool = True,
        tensorboard: bool = True,
        purge_step: int | None = None,
    ) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.enabled = enabled
        self._writer: Any = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:  # tensorboard is optional
                    pass
                else:
                    folder = str(Path(run_dir) / "tensorboard")
                    self._writer = SummaryWriter(folder, purge_step=purge_step)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (a flat mapping of JSON-able values)."""
        if not self.enabled:
            return
        with self.path.open("a") as file:
            file.write(json.dumps(dict(record)) + "\n")
        if self._writer is not None:
            kind, step = record.get("kind", "train"), int(record.get("step", 0))
            for key, value in record.items():
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                if number and key not in ("step", "stage", "epoch") and math.isfinite(value):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        """Flush and close TensorBoard's writer."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, in order."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keep_metrics(run_dir: str | Path, keep: Callable[[dict[str, Any]], bool]) -> int:
    """Rewrite ``run_dir/metrics.jsonl`` (atomically) with only the records for which ``keep`` is
    true, in order: a resumed run drops what it will write again. Returns how many went."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if keep(json.loads(line))]
    if len(kept) < len(lines):
        atomic_write(path, lambda file: file.write("".join(f"{x}\n" for x in kept).encode()))
    return len(lines) - len(kept)
