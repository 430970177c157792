"""Step losses that stay on the device until the trainer needs them.

Reading a loss (``float(loss)``) makes the host wait until the device has finished everything
queued so far. A CUDA loop that reads every step's loss leaves the GPU idle while the host
fetches the next batch and queues its first kernels; one that reads every tenth step keeps the
GPU fed (timm reads at its log interval, Lightning when it logs). The trainer keeps each step's
loss and stop flag here and reads all of them in one transfer when it needs them: at a logged
step, before anything is saved, at the end of an epoch or stage, and every step on the CPU,
where a read costs nothing. A NaN is still named by its own step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StepLoss:
    """One optimiser step's loss (mean over its micro-batches and processes) and whether any
    process asked to stop after it."""

    step: int
    stage: int
    loss: float
    stop: bool


class UnreadLosses:
    """The steps whose ``[loss, stop]`` pair (a device tensor of 2) has not been read yet."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int]] = []
        self.flags: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, stage: int, flags: torch.Tensor) -> None:
        """Keep step ``step`` (of stage index ``stage``) and its ``[loss, stop]`` tensor."""
        self.steps.append((step, stage))
        self.flags.append(flags.detach())

    def read(self) -> list[StepLoss]:
        """Every kept step in order, read from the device in one transfer, and forget them."""
        if not self.flags:
            return []
        values = torch.stack(self.flags).float().cpu().tolist()
        read = [
            StepLoss(step, stage, loss, stop > 0)
            for (step, stage), (loss, stop) in zip(self.steps, values, strict=True)
        ]
        self.steps, self.flags = [], []
        return read
