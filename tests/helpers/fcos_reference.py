"""FCOS's assignment as written before it was batched (commit 8c4ec3c, ``fcos_targets`` in
``fcnlab/models/detection/targets.py``), one image at a time, kept verbatim as the reference the
batched assignment must equal exactly."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fcnlab.models.detection.targets import BACKGROUND, IGNORE, check_target
from fcnlab.ops.boxes import box_area


def per_image_fcos_targets(
    target: Mapping[str, Any],
    num_classes: int,
    points: torch.Tensor,
    level: torch.Tensor,
    strides: Sequence[int],
    size_ranges: Sequence[Sequence[float]],
    center_radius: float | None = 1.5,
    index: int = 0,
) -> dict[str, torch.Tensor]:
    """One image's FCOS targets for locations ``points`` (L, 2) on pyramid levels ``level`` (L,).

    A location is a positive of a (non-crowd) box when (1) it lies inside the box, or with
    ``center_radius`` inside the box's centre region, the square of half-side
    ``center_radius * stride`` around the box centre clipped to the box (Tian et al.'s centre
    sampling), and (2) its largest distance to the box's sides, ``max(l, t, r, b)``, is within its
    level's range ``size_ranges[level]`` (bounds included). Several such boxes: the one of least
    area. Returns ``labels`` (L,) (class, ``BACKGROUND`` -1, or ``IGNORE`` -2 for a location
    inside a crowd box and no other box), ``ltrb`` (L, 4), the distances to the assigned box, and
    ``index`` (L,) int64, the assigned box's row in the target (-1 where none), which picks an
    instance segmentation target's mask.
    """
    boxes, labels, crowd = check_target(target, num_classes, index)
    boxes, labels, crowd = (
        boxes.to(points.device),
        labels.to(points.device),
        crowd.to(points.device),
    )
    if len(boxes) == 0:
        return {
            "labels": torch.full((len(points),), BACKGROUND, device=points.device),
            "ltrb": torch.zeros(len(points), 4, device=points.device),
            "index": torch.full((len(points),), -1, dtype=torch.long, device=points.device),
        }
    x, y = points[:, :1], points[:, 1:]
    ltrb = torch.stack(
        (x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y), dim=-1
    )  # (L, M, 4)
    inside = ltrb.min(-1).values > 0
    if center_radius is None:
        sampled = inside
    else:
        radius = torch.tensor(strides, device=points.device)[level][:, None] * center_radius
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        region = torch.stack(
            (
                x - torch.maximum(cx - radius, boxes[:, 0]),
                y - torch.maximum(cy - radius, boxes[:, 1]),
                torch.minimum(cx + radius, boxes[:, 2]) - x,
                torch.minimum(cy + radius, boxes[:, 3]) - y,
            ),
            dim=-1,
        )
        sampled = region.min(-1).values > 0
    ranges = torch.tensor(size_ranges, dtype=points.dtype, device=points.device)[level]
    reach = ltrb.max(-1).values
    in_range = (reach >= ranges[:, :1]) & (reach <= ranges[:, 1:])
    candidate = sampled & in_range & ~crowd
    best_area, best = torch.where(candidate, box_area(boxes)[None, :], math.inf).min(dim=1)
    positive = best_area.isfinite()
    in_crowd = (inside & crowd).any(dim=1)
    assigned = torch.where(positive, labels[best], torch.where(in_crowd, IGNORE, BACKGROUND))
    return {
        "labels": assigned,
        "ltrb": ltrb[torch.arange(len(points), device=points.device), best],
        "index": torch.where(positive, best, -1),
    }


def random_box_targets(
    seed: int, num_images: int, size: tuple[int, int], num_classes: int
) -> list[dict[str, torch.Tensor]]:
    """Target dicts with what the assignment must get right: 0 to 8 boxes per image (some
    images without any), whole-pixel and fractional corners, boxes that reach past the image,
    copies of a box under another class (equal areas: the first wins), crowd boxes, and boxes
    whose reach lands on a level's bound."""
    g = torch.Generator().manual_seed(seed)
    height, width = size
    targets = []
    for _ in range(num_images):
        count = int(torch.randint(0, 9, (), generator=g))
        corner = torch.rand(count, 2, generator=g) * torch.tensor([width, height])
        side = torch.rand(count, 2, generator=g) * max(height, width) * 0.9 + 2
        boxes = torch.cat((corner - side / 3, corner + side * 2 / 3), dim=1)
        boxes[: count // 2] = boxes[: count // 2].round()
        if count >= 3:
            boxes[2] = boxes[0]  # the same box twice
        if count >= 4:
            boxes[3] = torch.tensor([4.0, 4.0, 76.0, 40.0])  # reach 64 from (68, 20): P3's bound
        targets.append({
            "boxes": boxes,
            "labels": torch.randint(0, num_classes, (count,), generator=g),
            "iscrowd": (torch.rand(count, generator=g) < 0.2).long(),
        })  # fmt: skip
    return targets
