"""A full disk for tests of what a failed write leaves: every atomic write of fcnlab goes to a
file that accepts ``room`` bytes, then fails with ENOSPC as the system call does."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import IO, Any

import pytest

from fcnlab.runtime import checkpoint


class FullDisk(io.RawIOBase):
    """``file`` on a disk with ``room`` bytes left: the write that needs more fails."""

    def __init__(self, file: IO[bytes], room: int) -> None:
        self.file, self.room, self.name = file, room, file.name

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()
        super().close()


def on_a_full_disk(monkeypatch: pytest.MonkeyPatch, room: int) -> list[Path]:
    """Make fcnlab's atomic writes go to a full disk; returns the temporaries as they open."""
    opened: list[Path] = []
    real_open = checkpoint._open_temporary

    def full(target: Path) -> tuple[IO[bytes], Path]:
        file, temporary = real_open(target)
        opened.append(temporary)
        return FullDisk(file, room), temporary  # type: ignore[return-value]

    monkeypatch.setattr(checkpoint, "_open_temporary", full)
    return opened
