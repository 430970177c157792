"""Batching ``(image, target)`` samples whose targets differ in size: images stacked, targets kept
as a list (torchvision's detection references, detectron2's ``ImageList``); and ``(image, mask)``
samples of different sizes, padded to one (MMSeg's and detectron2's semantic segmentation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from fcnlab.data.targets import Target
from fcnlab.data.transforms import IGNORE_INDEX, pad_crop


def padded_stack(tensors: Sequence[torch.Tensor], fill: float = 0) -> torch.Tensor:
    """``tensors`` (..., H, W) padded with ``fill`` at the bottom and right to the largest H and
    W among them, then stacked: (N, ..., Hmax, Wmax)."""
    height = max(tensor.shape[-2] for tensor in tensors)
    width = max(tensor.shape[-1] for tensor in tensors)
    return torch.stack([pad_crop(tensor, 0, 0, height, width, fill) for tensor in tensors])


def collate_targets(
    batch: Sequence[tuple[torch.Tensor, Mapping[str, Any]]],
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, list[Target]]:
    """Stack ``(image, target)`` samples for a DataLoader: images ``(N, C, Hmax, Wmax)``
    zero-padded at the bottom and right, and the targets as a list (their instance counts differ,
    an image without objects has empty fields).

    Padding leaves every box where it was, since boxes are measured from the top-left corner;
    instance masks ``masks`` (K, H, W) are padded with False and a class map ``mask`` (H, W) with
    ``ignore_index`` to the batch's size, so that they stay on their image's grid.
    ``image_size`` (the unpadded size) is filled in where a target lacks it.
    """
    if not batch:
        raise ValueError("collate_targets got an empty batch")
    images = [image for image, _ in batch]
    channels = {image.shape[0] for image in images}
    if len(channels) != 1 or any(image.dim() != 3 for image in images):
        shapes = ", ".join(str(tuple(image.shape)) for image in images)
        raise ValueError(f"collate_targets needs (C, H, W) images with one C; got {shapes}")
    stacked = padded_stack(images)
    height, width = stacked.shape[-2:]
    targets = []
    for image, target in batch:
        size = (int(image.shape[1]), int(image.shape[2]))
        padded = {**target, "image_size": target.get("image_size", size)}
        for key, fill in (("mask", ignore_index), ("masks", False)):
            if key in padded:
                padded[key] = pad_crop(padded[key], 0, 0, height, width, fill)
        targets.append(padded)
    return stacked, targets


def collate_masks(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
    ignore_index: int = IGNORE_INDEX,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(image (C, H, W), mask (H, W))`` samples of any sizes for a DataLoader: images
    ``(N, C, Hmax, Wmax)`` zero-padded at the bottom and right, masks ``(N, Hmax, Wmax)`` padded
    with ``ignore_index``, so that no padded pixel is ever scored or trained on. Samples of one
    size are stacked as they are (PyTorch's default collate)."""
    if not batch:
        raise ValueError("collate_masks got an empty batch")
    if len({(image.shape, mask.shape) for image, mask in batch}) == 1:
        # PyTorch's own stacking: in a worker it writes the batch straight to shared memory.
        images, masks = default_collate(batch)
        return images, masks
    channels = batch[0][0].shape[0]
    if any(i.dim() != 3 or i.shape[0] != channels or m.shape != i.shape[1:] for i, m in batch):
        shapes = ", ".join(f"{tuple(i.shape)} with {tuple(m.shape)}" for i, m in batch)
        raise ValueError(
            "collate_masks needs (C, H, W) images with one C, each with an (H, W) mask of its "
            f"size; got {shapes}"
        )
    images = padded_stack([image for image, _ in batch])
    masks = padded_stack([mask for _, mask in batch], ignore_index)
    return images, masks


# The name the detection task, the demos and the README know the collate function by.
detection_collate = collate_targets
