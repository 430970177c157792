"""Instance targets as the instance contract has them (boxes derived from the masks), from masks
given in the test: for the instance models' loss and target tests."""

from __future__ import annotations

from typing import Any

import torch

from fcnlab.ops.masks import masks_to_boxes


def instance_target(
    masks: torch.Tensor, labels: list[int], crowd: list[int] | None = None
) -> dict[str, Any]:
    """One image's target: bool ``masks`` (K, H, W), their ``labels``, ``iscrowd`` (default 0)
    and boxes from the masks."""
    return {
        "boxes": masks_to_boxes(masks),
        "labels": torch.tensor(labels, dtype=torch.long),
        "iscrowd": torch.tensor(crowd or [0] * len(labels), dtype=torch.long),
        "masks": masks,
    }


def empty_target(height: int, width: int) -> dict[str, Any]:
    """The target of an image of ``height`` x ``width`` with no object (masks (0, H, W))."""
    return instance_target(torch.zeros(0, height, width, dtype=torch.bool), [])


def rectangles(height: int, width: int, *boxes: tuple[int, int, int, int]) -> torch.Tensor:
    """Bool masks (K, H, W), mask k covering columns x1..x2-1 and rows y1..y2-1 of box k."""
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        masks[k, y1:y2, x1:x2] = True
    return masks
