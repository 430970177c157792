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


def two_shapes(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """An image (1, 3, S, S) with a red disc and a green wedge on dark noise, and their bool
    masks (2, S, S): the one-image set the instance models' overfitting tests learn."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (yy - 30) ** 2 + (xx - 24) ** 2 < 14**2
    wedge = (xx >= 36) & (xx < 60) & (yy >= 40) & (yy < 62) & (xx - 36 <= (yy - 40) * 1.1)
    masks = torch.stack([disc, wedge])
    image = torch.rand(1, 3, size, size) * 0.2
    image[0, 0][disc] = 1.0
    image[0, 1][wedge] = 1.0
    return image, masks


def overfit(model: torch.nn.Module, image: torch.Tensor, masks: torch.Tensor, steps: int) -> float:
    """Train ``model`` on ``image`` with ``masks`` labelled 0, 1, ... for ``steps`` Adam steps
    (lr 1e-2); returns the first step's mask loss divided by the last's."""
    targets = [instance_target(masks, list(range(len(masks))))]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = last = None
    for _ in range(steps):
        losses = model.loss(model(image), targets)
        first = first if first is not None else losses["mask"].item()
        last = losses["mask"].item()
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    return first / last
