"""What instance models' losses share: a target's masks, checked, and masks brought to the
stride of a model's mask output (CondInst's and SOLOv2's, after AdelaiDet's ``add_bitmasks``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F


def masks_at_stride(masks: torch.Tensor, stride: int) -> torch.Tensor:
    """Binary masks (M, H, W) -> float (M, ceil(H / s), ceil(W / s)) on the stride-s grid.

    As AdelaiDet's CondInst (``add_bitmasks``): every cell takes the pixel at offset
    ``s // 2`` in both directions, ``masks[:, s//2::s, s//2::s]``; a cell whose pixel lies past
    the bottom/right edge is background (AdelaiDet pads the masks to a multiple of 32 first).
    Sampled before any conversion to float, so no full-size float copy is made.
    """
    height, width = masks.shape[-2:]
    h, w = math.ceil(height / stride), math.ceil(width / stride)
    start = stride // 2
    sampled = masks[:, start::stride, start::stride].float()
    return F.pad(sampled, (0, w - sampled.shape[-1], 0, h - sampled.shape[-2]))


def instance_masks(target: Mapping[str, Any], index: int = 0) -> torch.Tensor:
    """The bool masks (K, H, W) of one image's target, one per label, or a sentence why not."""
    if "masks" not in target:
        raise KeyError(
            f"target {index} needs 'masks' (K, H, W) for an instance model's mask loss, got keys "
            f"{sorted(target)}"
        )
    masks = torch.as_tensor(target["masks"])
    count = torch.as_tensor(target["labels"]).numel()
    if masks.dim() != 3 or len(masks) != count:
        raise ValueError(
            f"target {index} has masks of shape {tuple(masks.shape)} for {count} labels; "
            "expected (K, H, W), one mask per object"
        )
    return masks.bool()
