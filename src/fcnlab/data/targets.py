"""The target dict of a sample with objects: its fields, how to make one, select its instances and
check its boxes.

``dataset[i]`` of a detection view is ``(image, target)``: image float32 ``(3, H, W)``; target a
dict with

- ``boxes``: float32 ``(K, 4)`` as ``(x1, y1, x2, y2)`` pixel *edges* in the image's frame: a box
  around pixel columns ``a..b`` (0-based, inclusive) has ``x1 = a`` and ``x2 = b + 1``, so its width
  ``x2 - x1`` counts its pixels (torchvision's and mmdetection's convention),
- ``labels``: int64 ``(K,)`` object classes in ``[0, num_classes)``, no background class,
- ``iscrowd``: int64 ``(K,)`` 0/1 (COCO's crowd regions; zeros elsewhere),
- ``difficult``: int64 ``(K,)`` 0/1 (VOC's difficult objects; zeros elsewhere),
- ``masks`` (instance views only): bool ``(K, H, W)``, one mask per instance, at the image's
  size; ``boxes`` are then derived from them (:func:`make_instance_target`), so a box is always
  the box of its mask's pixels,
- ``image_id``: int; ``orig_size``: ``(H0, W0)`` as stored on disk; ``image_size``: ``(H, W)``
  after the transforms.

The transforms (:mod:`fcnlab.data.transforms`) move ``boxes``, ``masks`` and a class map ``mask``
with the image, recompute the boxes of instance masks from the moved masks and drop the instances a
crop cuts away; the collate function (:mod:`fcnlab.data.collate`) batches targets as a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fcnlab.data.io import DataFormatError
from fcnlab.ops.masks import masks_to_boxes

Target = dict[str, Any]

# The per-instance fields of a target: what selecting or dropping instances must index together.
INSTANCE_FIELDS = ("boxes", "labels", "iscrowd", "difficult", "masks")
# Published boxes overhang their image by rounding (COCO's float boxes, VOC's few xmin=0 boxes):
# up to this many pixels are clipped away; a box further out is an error.
OVERHANG_TOLERANCE = 1.0


def make_target(
    boxes: torch.Tensor | Sequence[Sequence[float]],
    labels: torch.Tensor | Sequence[int],
    image_id: int,
    orig_size: tuple[int, int],
    iscrowd: torch.Tensor | Sequence[int] | None = None,
    difficult: torch.Tensor | Sequence[int] | None = None,
) -> Target:
    """A target dict in the detection format (see the module docstring); missing flags are 0.

    ``image_size`` starts as ``orig_size``: the transforms and the data set update it.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    count = len(boxes)

    def flags(values: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
        if values is None:
            return torch.zeros(count, dtype=torch.int64)
        return torch.as_tensor(values, dtype=torch.int64).reshape(count)

    size = (int(orig_size[0]), int(orig_size[1]))
    return {
        "boxes": boxes,
        "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(count),
        "iscrowd": flags(iscrowd),
        "difficult": flags(difficult),
        "image_id": int(image_id),
        "orig_size": size,
        "image_size": size,
    }


def make_instance_target(
    masks: torch.Tensor,
    labels: torch.Tensor | Sequence[int],
    image_id: int,
    iscrowd: torch.Tensor | Sequence[int] | None = None,
) -> Target:
    """An instance target: ``masks`` bool ``(K, H, W)`` at the image's size, their ``labels`` and
    crowd flags, and the boxes derived from the masks (:func:`fcnlab.ops.masks.masks_to_boxes`);
    ``orig_size`` is the masks' ``(H, W)``. Instances whose mask has no pixel are left out (they
    have no box, and nothing could ever match them), as detectron2's ``filter_empty_instances``
    leaves them out.
    """
    if masks.dim() != 3:
        raise ValueError(f"instance masks must be (K, H, W), got shape {tuple(masks.shape)}")
    masks = masks.bool()
    size = (int(masks.shape[1]), int(masks.shape[2]))
    target = {
        **make_target(masks_to_boxes(masks), labels, image_id, size, iscrowd),
        "masks": masks,
    }
    keep = masks.flatten(1).any(dim=1)
    return target if bool(keep.all()) else select_instances(target, keep)


def select_instances(target: Mapping[str, Any], keep: torch.Tensor) -> Target:
    """A copy of ``target`` with only the instances ``keep`` (a bool mask or indices) in every
    per-instance field (``INSTANCE_FIELDS``)."""
    return {
        key: value[keep] if key in INSTANCE_FIELDS and isinstance(value, torch.Tensor) else value
        for key, value in target.items()
    }


def check_boxes(
    boxes: torch.Tensor, size: tuple[int, int], file: str | Path, names: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check xyxy ``boxes`` (K, 4) against an image of ``size`` (H, W).

    A box that is not finite, has a negative width or height, or reaches more than
    ``OVERHANG_TOLERANCE`` pixels outside the image raises :class:`DataFormatError` naming
    ``file`` and ``names[k]`` (which annotation it is). Returns the boxes clipped to the image
    and a bool mask of those with a positive width and height: degenerate boxes cover no pixel
    and are left out, as torchvision's COCO reference leaves them out.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    height, width = size
    finite = torch.isfinite(boxes).all(1)
    negative = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    limits = torch.tensor([0.0, 0.0, width, height], dtype=torch.float64)
    outside = (boxes[:, :2] < -OVERHANG_TOLERANCE).any(1) | (
        boxes[:, 2:] > limits[2:] + OVERHANG_TOLERANCE
    ).any(1)
    problems = (
        (~finite, "is not finite"),
        (negative, "has a negative width or height"),
        (outside, f"reaches outside the {height}x{width} image (height x width)"),
    )
    for bad, problem in problems:
        if bad.any():
            k = int(bad.nonzero()[0])
            corners = ", ".join(f"{float(v):g}" for v in boxes[k])
            raise DataFormatError(file, f"{names[k]}: box (x1, y1, x2, y2) = ({corners}) {problem}")
    clipped = torch.minimum(boxes.clamp(min=0), limits[[2, 3, 2, 3]]).float()
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, keep
