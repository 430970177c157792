"""What the detectors' ``decode`` steps share: boxes from a point and its distances to the four
sides (clipping to the image is :func:`fcnlab.ops.boxes.clip_boxes`).

A detector's ``decode`` returns one dict per image, ``{"boxes": (K, 4) float xyxy input pixels,
"scores": (K,), "labels": (K,) int64}``, best first.
"""

from __future__ import annotations

import torch


def ltrb_to_boxes(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """xyxy boxes from locations (..., 2) and their distances (..., 4) to the four sides.

    FCOS predicts the four distances; CenterNet's box is the case left = right = w / 2 and
    top = bottom = h / 2 around the centre.
    """
    return torch.cat((points - ltrb[..., :2], points + ltrb[..., 2:]), dim=-1)
