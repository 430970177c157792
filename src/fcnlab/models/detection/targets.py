"""Detection targets: checking them, and turning boxes into what each detector's head predicts.

A target is one image's dict ``{"boxes": (M, 4) float xyxy pixels, "labels": (M,) int64 in
[0, num_classes), "iscrowd": (M,) bool or int}`` ("iscrowd" may be left out: no crowd). Crowd
boxes (COCO's ``iscrowd=1`` regions) never make positives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fcnlab.ops.boxes import box_area

# Label of a location whose classification is not trained (FCOS: inside a crowd box only).
IGNORE = -2
BACKGROUND = -1


def check_batch(targets: Sequence[Mapping[str, Any]], batch_size: int) -> None:
    """Raise a ValueError unless there is one target dict per image of the batch."""
    if len(targets) != batch_size:
        raise ValueError(f"got {len(targets)} targets for a batch of {batch_size} images")


def check_target(
    target: Mapping[str, Any], num_classes: int, index: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(boxes float (M, 4), labels int64 (M,), crowd bool (M,)) of one image's target dict."""
    where = f"target {index}"
    if "boxes" not in target or "labels" not in target:
        raise KeyError(f"{where} needs 'boxes' and 'labels', got keys {sorted(target)}")
    boxes = torch.as_tensor(target["boxes"], dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(target["labels"]).long().reshape(-1)
    crowd = torch.as_tensor(target.get("iscrowd", torch.zeros(len(labels)))).bool().reshape(-1)
    if not len(boxes) == len(labels) == len(crowd):
        raise ValueError(
            f"{where} has {len(boxes)} boxes, {len(labels)} labels and {len(crowd)} iscrowd "
            "flags; expected one of each per object"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{where} has labels in [{int(labels.min())}, {int(labels.max())}]; expected "
            f"[0, {num_classes})"
        )
    return boxes, labels, crowd


def gaussian_radius(
    height: torch.Tensor, width: torch.Tensor, min_overlap: float = 0.7
) -> torch.Tensor:
    """CenterNet's splat radius for boxes of ``height`` x ``width`` (output-map units).

    CornerNet's rule (Law & Deng 2018), as CenterNet's released code computes it: the smallest
    of three radii for the cases of a corner pair moved inwards, outwards, or one in and one out,
    each the larger root of ``a r^2 - b r + c = 0`` with IoU ``min_overlap`` at the limit. The
    code divides the roots by 2 instead of 2a; trained CenterNet models use this rule, so it is
    kept as released.
    """
    h, w, t = height, width, min_overlap
    b1 = h + w
    c1 = w * h * (1 - t) / (1 + t)
    r1 = (b1 + (b1**2 - 4 * c1).sqrt()) / 2
    b2 = 2 * (h + w)
    c2 = (1 - t) * w * h
    r2 = (b2 + (b2**2 - 16 * c2).sqrt()) / 2
    a3 = 4 * t
    b3 = -2 * t * (h + w)
    c3 = (t - 1) * w * h
    r3 = (b3 + (b3**2 - 4 * a3 * c3).sqrt()) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def draw_gaussians(
    heatmap: torch.Tensor, centers: torch.Tensor, radii: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Splat one Gaussian per object into ``heatmap`` (C, h, w) in place, keeping the maximum.

    ``centers`` (M, 2) are integer (x, y) cells, ``radii`` (M,) integers; as in CenterNet, a
    splat covers the (2r+1)^2 cells around its centre with ``sigma = (2r+1)/6`` and is 1 at the
    centre; where splats of one class overlap, the larger value wins.
    """
    _, h, w = heatmap.shape
    sigma = (2 * radii.float() + 1) / 6
    dx = torch.arange(w, device=heatmap.device)[None, :] - centers[:, :1]
    dy = torch.arange(h, device=heatmap.device)[None, :] - centers[:, 1:]
    gx = torch.exp(-(dx.float() ** 2) / (2 * sigma[:, None] ** 2)) * (dx.abs() <= radii[:, None])
    gy = torch.exp(-(dy.float() ** 2) / (2 * sigma[:, None] ** 2)) * (dy.abs() <= radii[:, None])
    splats = (gy[:, :, None] * gx[:, None, :]).reshape(len(labels), h * w).to(heatmap.dtype)
    index = labels[:, None].expand(-1, h * w)
    heatmap.view(-1, h * w).scatter_reduce_(0, index, splats, "amax")
    return heatmap


def centernet_targets(
    target: Mapping[str, Any],
    num_classes: int,
    output_size: Sequence[int],
    stride: int,
    index: int = 0,
    min_overlap: float = 0.7,
) -> dict[str, torch.Tensor]:
    """One image's CenterNet targets on an (h, w) map of ``stride`` input pixels per cell.

    Returns ``heatmap`` (C, h, w), and per (non-crowd, non-empty) object ``cell`` (M,) the flat
    index ``y * w + x`` of its centre's cell, ``size`` (M, 2) its (w, h) in cells and ``offset``
    (M, 2) the centre's sub-cell position in [0, 1). Cell (x, y) covers input pixels
    [x s, (x+1) s) x [y s, (y+1) s).
    """
    h, w = output_size
    boxes, labels, crowd = check_target(target, num_classes, index)
    keep = ~crowd & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, labels = boxes[keep] / stride, labels[keep]
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    limit = torch.tensor([w - 1, h - 1], dtype=centers.dtype, device=centers.device)
    cells = centers.floor().clamp(min=0).minimum(limit).long()
    size = boxes[:, 2:] - boxes[:, :2]
    radii = gaussian_radius(size[:, 1], size[:, 0], min_overlap).floor().clamp(min=0).long()
    heatmap = torch.zeros(num_classes, h, w, device=boxes.device)
    draw_gaussians(heatmap, cells, radii, labels)
    return {
        "heatmap": heatmap,
        "cell": cells[:, 1] * w + cells[:, 0],
        "size": size,
        "offset": centers - cells,
    }


def fcos_locations(
    sizes: Sequence[Sequence[int]], strides: Sequence[int], device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input-pixel (x, y) of every feature-map location, level after level, row-major.

    Location (i, j) of a level with stride s sits at ``(j s + s // 2, i s + s // 2)``, near the
    centre of its receptive field, as in FCOS. Returns ``points`` (L, 2) and ``level`` (L,).
    """
    points, level = [], []
    for k, ((h, w), s) in enumerate(zip(sizes, strides, strict=True)):
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
        )
        points.append(torch.stack((xs, ys), dim=-1).reshape(-1, 2) * s + s // 2)
        level.append(torch.full((h * w,), k, device=device))
    return torch.cat(points).float(), torch.cat(level)


def centerness_target(ltrb: torch.Tensor) -> torch.Tensor:
    """FCOS centre-ness ``sqrt(min(l, r)/max(l, r) * min(t, b)/max(t, b))`` of (..., 4) ltrb."""
    lr, tb = ltrb[..., 0::2], ltrb[..., 1::2]
    ratio = (lr.min(-1).values / lr.max(-1).values) * (tb.min(-1).values / tb.max(-1).values)
    return ratio.clamp(min=0).sqrt()


def check_targets(
    targets: Sequence[Mapping[str, Any]], num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """``check_target`` of each image's target, concatenated image after image: boxes (M, 4),
    labels (M,), crowd (M,) of the whole batch and each image's number of boxes."""
    checked = [check_target(target, num_classes, i) for i, target in enumerate(targets)]
    boxes, labels, crowd = (torch.cat(parts) for parts in zip(*checked, strict=True))
    return boxes, labels, crowd, [len(box) for box, _, _ in checked]


def fcos_targets(
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
    instance segmentation target's mask. :func:`fcos_batch_targets` for a batch.
    """
    boxes, labels, crowd = check_target(target, num_classes, index)
    made = fcos_batch_targets(
        boxes, labels, crowd, [len(boxes)], points, level, strides, size_ranges, center_radius
    )
    return {key: value[0] for key, value in made.items()}


def fcos_batch_targets(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    crowd: torch.Tensor,
    counts: Sequence[int],
    points: torch.Tensor,
    level: torch.Tensor,
    strides: Sequence[int],
    size_ranges: Sequence[Sequence[float]],
    center_radius: float | None = 1.5,
) -> dict[str, torch.Tensor]:
    """:func:`fcos_targets` of a batch of N images at once, on ``points``' device.

    ``boxes`` (M, 4), ``labels`` (M,) and ``crowd`` (M,) bool hold the batch's boxes image after
    image, ``counts[i]`` of them image ``i``'s (:func:`check_targets`). Returns ``labels`` (N, L),
    ``ltrb`` (N, L, 4) and ``index`` (N, L), the assigned box's row in its own image's target.

    Every (box, location) pair is computed once, whichever image the box is in, so the work is
    that of one image after another without a Python loop over the images (on a GPU, a fixed
    number of kernels per batch); only the choice of each location's box pads the images' boxes
    to the most any image has.
    """
    device = points.device
    num_images, num_boxes = len(counts), len(boxes)
    if num_boxes == 0:
        return {
            "labels": torch.full((num_images, len(points)), BACKGROUND, device=device),
            "ltrb": torch.zeros(num_images, len(points), 4, device=device),
            "index": torch.full((num_images, len(points)), -1, dtype=torch.long, device=device),
        }
    boxes, labels, crowd = boxes.to(device), labels.to(device), crowd.to(device)
    sizes = torch.tensor(counts, device=device)
    starts = sizes.cumsum(0) - sizes
    owner = torch.arange(num_images, device=device).repeat_interleave(sizes, output_size=num_boxes)
    slot = torch.arange(num_boxes, device=device) - starts[owner]
    # Boxes along rows, locations along columns: (M, L).
    x, y = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = boxes[:, 0:1], boxes[:, 1:2], boxes[:, 2:3], boxes[:, 3:4]
    left, top, right, bottom = x - x1, y - y1, x2 - x, y2 - y
    inside = torch.minimum(torch.minimum(left, top), torch.minimum(right, bottom)) > 0
    if center_radius is None:
        sampled = inside
    else:
        radius = torch.tensor(strides, device=device)[level] * center_radius
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        sampled = (
            torch.minimum(
                torch.minimum(
                    x - torch.maximum(cx - radius, x1), y - torch.maximum(cy - radius, y1)
                ),
                torch.minimum(
                    torch.minimum(cx + radius, x2) - x, torch.minimum(cy + radius, y2) - y
                ),
            )
            > 0
        )
    ranges = torch.tensor(size_ranges, dtype=points.dtype, device=device)[level]
    reach = torch.maximum(torch.maximum(left, top), torch.maximum(right, bottom))
    in_range = (reach >= ranges[:, 0]) & (reach <= ranges[:, 1])
    candidate = sampled & in_range & ~crowd[:, None]
    cost = torch.where(candidate, box_area(boxes)[:, None], math.inf)
    # Each image's boxes in a row of its own, padded with inf: the least area of each image's
    # candidates, the first of equal ones (torch.min's rule), as one image alone would pick.
    padded = cost.new_full((num_images, len(points), max(counts)), math.inf)
    padded[owner, :, slot] = cost
    best_area, best = padded.min(dim=2)
    positive = best_area.isfinite()
    hits = (inside & crowd[:, None]).to(points.dtype)
    in_crowd = hits.new_zeros(num_images, len(points)).index_add_(0, owner, hits) > 0
    chosen = (starts[:, None] + best).clamp(max=num_boxes - 1)
    assigned = torch.where(positive, labels[chosen], torch.where(in_crowd, IGNORE, BACKGROUND))
    box = boxes[chosen]
    ltrb = torch.stack((x - box[..., 0], y - box[..., 1], box[..., 2] - x, box[..., 3] - y), dim=-1)
    return {
        "labels": assigned,
        "ltrb": torch.where((sizes > 0)[:, None, None], ltrb, 0.0),
        "index": torch.where(positive, best, -1),
    }
