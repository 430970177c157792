"""The run folder's log: ``metrics.jsonl`` (one JSON object per line) and optional TensorBoard.

Each line has ``kind`` ``"train"`` (a logging step: loss, lr, images/s) or ``"eval"`` (an
evaluation: mIoU, accuracies, per-class IoU), plus ``stage``, ``epoch`` and ``step``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class RunLog:
    """Appends records to ``run_dir/metrics.jsonl`` and mirrors numbers to TensorBoard when the
    ``tensorboard`` package is installed and ``tensorboard`` is true. Disabled on ranks > 0."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
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
                    self._writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

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
