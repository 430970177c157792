"""Joint image + boxes transforms for detection: the segmentation transforms' random draws and
image operations (:mod:`fcnlab.data.transforms`), with the target's boxes moved the same way.

Every transform is called as ``t(image, target, generator=None) -> (image, target)`` with a target
in the format of :mod:`fcnlab.data.detection`; the input target is never modified. Boxes are xyxy
pixel edges, so resizing scales them by the exact ratio of output to input size (bilinear
resizing with ``align_corners=False`` maps pixel edges onto pixel edges), a horizontal flip maps
``x`` to ``W - x`` and a crop shifts them and clips them to the window. Colour jitter and
normalisation touch the image only: :func:`~fcnlab.data.transforms.photometric_steps`
(``ColorJitter``, ``Normalize``) serve both tasks as they are.

With the same ``generator`` state a transform here draws exactly what its segmentation
counterpart draws, so an image transformed with either comes out the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fcnlab.data.detection import Target, select_boxes
from fcnlab.data.transforms import (
    IGNORE_INDEX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    RandomHorizontalFlip,
    RandomScaleCrop,
    photometric_steps,
    resize_image,
    scale_crop_image,
    scaled_size,
)

# A box cut by a crop is kept while at least this share of its area stays inside the window ...
MIN_VISIBLE = 0.3
# ... and its visible part is at least this many pixels wide and high.
MIN_SIZE = 2.0

Sample = tuple[torch.Tensor, Target]


def resize_boxes(
    boxes: torch.Tensor, in_size: tuple[int, int], out_size: tuple[int, int]
) -> torch.Tensor:
    """xyxy ``boxes`` (M, 4) of an image of ``in_size`` (H, W) in the frame of the image resized
    to ``out_size``: x scaled by W'/W, y by H'/H."""
    sy, sx = out_size[0] / in_size[0], out_size[1] / in_size[1]
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """xyxy ``boxes`` (M, 4) of an image ``width`` pixels wide, mirrored left to right:
    ``x1' = W - x2`` and ``x2' = W - x1``."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def crop_boxes(
    boxes: torch.Tensor,
    top: int,
    left: int,
    height: int,
    width: int,
    min_visible: float = MIN_VISIBLE,
    min_size: float = MIN_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """xyxy ``boxes`` (M, 4) in the frame of the ``height`` x ``width`` window at (``top``,
    ``left``), clipped to it, and a bool mask of the boxes to keep.

    A box the window does not cut is always kept; a cut one is kept when at least
    ``min_visible`` of its area and at least ``min_size`` pixels of its width and of its height
    remain inside (a sliver of an object teaches a detector nothing it could find again).
    """
    shifted = boxes - boxes.new_tensor([left, top, left, top])
    limits = boxes.new_tensor([width, height, width, height])
    clipped = torch.minimum(shifted.clamp(min=0), limits)
    cut = (clipped != shifted).any(dim=1)
    size = clipped[:, 2:] - clipped[:, :2]
    area = (shifted[:, 2:] - shifted[:, :2]).prod(dim=1)
    visible = (
        (size > 0).all(dim=1)
        & (size >= min_size).all(dim=1)
        & (size.prod(dim=1) >= min_visible * area)
    )
    return clipped, ~cut | visible


def check_target(image: torch.Tensor, target: Mapping[str, Any]) -> None:
    """Raise a ValueError unless image is float (C, H, W) and target holds (M, 4) boxes."""
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float (C, H, W) tensor, got {image.dtype} {tuple(image.shape)}"
        )
    boxes = target.get("boxes") if isinstance(target, Mapping) else None
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        found = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"target['boxes'] must be an (M, 4) tensor of xyxy boxes, got {found}")


class DetectionCompose(Compose):
    """Apply transforms in order to (image, target), passing the same ``generator`` to each,
    and record the final size as ``target["image_size"]``."""

    def __call__(  # type: ignore[override]
        self,
        image: torch.Tensor,
        target: Mapping[str, Any],
        generator: torch.Generator | None = None,
    ) -> Sample:
        check_target(image, target)
        out: Any = dict(target)
        for transform in self.transforms:
            image, out = transform(image, out, generator=generator)
        return image, {**out, "image_size": (int(image.shape[1]), int(image.shape[2]))}


class BoxResize:
    """Resize the image to a fixed (H, W) (an int gives a square) and scale the boxes."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def __call__(
        self, image: torch.Tensor, target: Target, generator: torch.Generator | None = None
    ) -> Sample:
        in_size = (image.shape[1], image.shape[2])
        boxes = resize_boxes(target["boxes"], in_size, self.size)
        return resize_image(image, self.size), {**target, "boxes": boxes}

    def __repr__(self) -> str:
        return f"BoxResize({self.size})"


class BoxRandomScaleCrop:
    """:class:`~fcnlab.data.transforms.RandomScaleCrop` (same draws, same image) with the boxes
    scaled, shifted and clipped to the window; cut boxes are dropped by :func:`crop_boxes`'s
    rule (``min_visible`` of the area, ``min_size`` pixels)."""

    def __init__(
        self,
        size: int | tuple[int, int],
        min_scale: float = 0.5,
        max_scale: float = 2.0,
        fill: float = 0.0,
        min_visible: float = MIN_VISIBLE,
        min_size: float = MIN_SIZE,
    ) -> None:
        self.draws = RandomScaleCrop(size, min_scale, max_scale, fill, IGNORE_INDEX)
        self.min_visible, self.min_size = min_visible, min_size

    def __call__(
        self, image: torch.Tensor, target: Target, generator: torch.Generator | None = None
    ) -> Sample:
        in_size = (image.shape[1], image.shape[2])
        factor, top, left = self.draws.draw(in_size, generator)
        height, width = self.draws.crop.size
        scaled = scaled_size(*in_size, factor)
        boxes = resize_boxes(target["boxes"], in_size, scaled)
        # The window may reach past the scaled image into padding, where no box can be.
        visible_h, visible_w = min(height, scaled[0] - top), min(width, scaled[1] - left)
        boxes, keep = crop_boxes(
            boxes, top, left, visible_h, visible_w, self.min_visible, self.min_size
        )
        image = scale_crop_image(image, factor, top, left, height, width, self.draws.crop.fill)
        return image, select_boxes({**target, "boxes": boxes}, keep)

    def __repr__(self) -> str:
        scale = self.draws.scale
        return (
            f"BoxRandomScaleCrop({self.draws.crop.size}, {scale.min_scale}, {scale.max_scale}, "
            f"min_visible={self.min_visible}, min_size={self.min_size})"
        )


class BoxRandomHorizontalFlip:
    """Mirror the image and its boxes with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.draws = RandomHorizontalFlip(p)

    def __call__(
        self, image: torch.Tensor, target: Target, generator: torch.Generator | None = None
    ) -> Sample:
        if not self.draws.draw(generator):
            return image, target
        boxes = flip_boxes(target["boxes"], image.shape[2])
        return image.flip(-1), {**target, "boxes": boxes}

    def __repr__(self) -> str:
        return f"BoxRandomHorizontalFlip({self.draws.p})"


def detection_train_transforms(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    flip: float = 0.5,
    jitter: float = 0.0,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    min_visible: float = MIN_VISIBLE,
    min_size: float = MIN_SIZE,
) -> DetectionCompose:
    """:func:`~fcnlab.data.transforms.train_transforms` for detection: random scale and crop
    (boxes clipped, cut ones dropped below ``min_visible`` / ``min_size``), horizontal flip,
    optional colour jitter, then normalisation (``mean=None`` skips it)."""
    geometry = [
        BoxRandomScaleCrop(crop_size, *scale, min_visible=min_visible, min_size=min_size),
        BoxRandomHorizontalFlip(flip),
    ]
    return DetectionCompose([*geometry, *photometric_steps(jitter, mean, std)])


def detection_eval_transforms(
    size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> DetectionCompose:
    """Evaluation pipeline: optional fixed resize (boxes scaled), then normalisation
    (``mean=None`` skips it)."""
    geometry = [] if size is None else [BoxResize(size)]
    return DetectionCompose([*geometry, *photometric_steps(0.0, mean, std)])
