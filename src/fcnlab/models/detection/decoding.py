"""What the detectors' ``decode`` steps share: boxes from a point and its distances to the four
sides (clipping to the image is :func:`fcnlab.ops.boxes.clip_boxes`).

A detector's ``decode`` returns one dict per image, ``{"boxes": (K, 4) float xyxy input pixels,
"scores": (K,), "labels": (K,) int64}``, best first. Decoding works on the whole batch at once;
the per-image lists are cut from it at the end with one read of the counts to the host.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def ltrb_to_boxes(points: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """xyxy boxes from locations (..., 2) and their distances (..., 4) to the four sides.

    FCOS predicts the four distances; CenterNet's box is the case left = right = w / 2 and
    top = bottom = h / 2 around the centre.
    """
    return torch.cat((points - ltrb[..., :2], points + ltrb[..., 2:]), dim=-1)


def split_by_image(
    detections: Mapping[str, torch.Tensor], image: torch.Tensor, num_images: int, top_k: int
) -> list[dict[str, torch.Tensor]]:
    """The ``top_k`` first detections of each image, in their order.

    ``detections`` holds fields (M, ...) of a whole batch, best first; ``image`` (M,) int64 says
    whose each row is. A stable sort by image keeps each image's rows in their order, and the
    counts are the one value read to the host.
    """
    order = image.argsort(stable=True)
    counts = torch.bincount(image, minlength=num_images).tolist()
    grouped = {name: field[order].split(counts) for name, field in detections.items()}
    return [{name: parts[i][:top_k] for name, parts in grouped.items()} for i in range(num_images)]
