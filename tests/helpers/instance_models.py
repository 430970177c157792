"""A stand-in instance segmentation model with fixed answers, for tests of what is done with a
model's instances (pictures, predictions) rather than of the model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# (label, score, (x1, y1, x2, y2) as fractions of the image): two overlapping instances of
# class 0 (the lower-scored one first, as a decode need not sort) and one of class 1.
INSTANCES = (
    (0, 0.6, (0.1, 0.1, 0.6, 0.6)),
    (0, 0.9, (0.4, 0.4, 0.9, 0.9)),
    (1, 0.4, (0.0, 0.75, 0.3, 1.0)),
)


class FixedInstances(nn.Module):
    """The contract's instance model (``task``, ``mask_stride``, ``forward`` -> dict of tensors,
    ``decode``) that finds ``instances`` in every image whose mean brightness is at least
    ``min_brightness``, and nothing in darker ones.

    Each instance's mask probabilities (at stride 4) are 0.9 on the cells whose centres lie in
    its box and 0.1 elsewhere; its box is the image-pixel box.
    """

    task = "instance"
    mask_stride = 4

    def __init__(
        self,
        num_classes: int = 2,
        instances: Sequence[tuple[int, float, tuple[float, float, float, float]]] = INSTANCES,
        min_brightness: float = 0.05,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.instances = list(instances)
        self.min_brightness = min_brightness
        # A parameter, so that .to(device) and the precision helpers see a real module.
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"brightness": (N,) each image's mean} (as the model received it)."""
        return {"brightness": images.float().mean(dim=(1, 2, 3)) * self.gain}

    def decode(
        self,
        outputs: dict[str, torch.Tensor],
        image_size: Sequence[int],
        score_threshold: float = 0.05,
        top_k: int = 100,
    ) -> list[dict[str, torch.Tensor]]:
        """Per image {"boxes", "scores", "labels", "masks" (K, ceil(H/4), ceil(W/4))}."""
        height, width = (int(v) for v in image_size)
        found = []
        for brightness in outputs["brightness"].tolist():
            kept = [
                item
                for item in self.instances
                if brightness >= self.min_brightness and item[1] >= score_threshold
            ][:top_k]
            boxes = [
                torch.tensor([x1 * width, y1 * height, x2 * width, y2 * height])
                for _, _, (x1, y1, x2, y2) in kept
            ]
            masks = [cell_probabilities(height, width, box) for _, _, box in kept]
            rows, cols = math.ceil(height / 4), math.ceil(width / 4)
            found.append({
                "boxes": torch.stack(boxes) if boxes else torch.zeros(0, 4),
                "scores": torch.tensor([s for _, s, _ in kept], dtype=torch.float32),
                "labels": torch.tensor([label for label, _, _ in kept], dtype=torch.int64),
                "masks": torch.stack(masks) if masks else torch.zeros(0, rows, cols),
            })  # fmt: skip
        return found


def cell_probabilities(
    height: int, width: int, box: tuple[float, float, float, float]
) -> torch.Tensor:
    """(ceil(H / 4), ceil(W / 4)) mask probabilities of an instance whose box is ``box``
    (fractions of the image): 0.9 on the 4 x 4 cells whose centres lie in it, 0.1 elsewhere."""
    x1, y1, x2, y2 = box
    centre_y = (torch.arange(math.ceil(height / 4)) * 4 + 2.0)[:, None]
    centre_x = (torch.arange(math.ceil(width / 4)) * 4 + 2.0)[None, :]
    inside = (
        (centre_x >= x1 * width) & (centre_x < x2 * width)
        & (centre_y >= y1 * height) & (centre_y < y2 * height)
    )  # fmt: skip
    return torch.where(inside, 0.9, 0.1)


def expected_masks(height: int, width: int, threshold: float) -> tuple[np.ndarray, list]:
    """FixedInstances' masks at the image's size: its 0.9 / 0.1 cells (0.9 where a 4 x 4 cell's
    centre lies in the box) upsampled by PyTorch's bilinear interpolation, cropped to the image
    and thresholded at 0.5. Most confident first, with their (label, score, box) records."""
    kept = sorted((item for item in INSTANCES if item[1] >= threshold), key=lambda i: -i[1])
    masks = np.zeros((len(kept), height, width), dtype=bool)
    for k, (_, _, box) in enumerate(kept):
        cells = cell_probabilities(height, width, box)[None, None]
        large = F.interpolate(cells, scale_factor=4, mode="bilinear", align_corners=False)
        masks[k] = (large[0, 0, :height, :width] >= 0.5).numpy()
    return masks, kept
