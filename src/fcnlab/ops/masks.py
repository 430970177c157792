"""Operations on instance masks: their boxes, their pairwise IoU, the dice loss between predicted
and target masks, and pasting low-resolution mask probabilities into an image frame.

Masks are ``(K, H, W)`` tensors: bool for binary masks, float in [0, 1] for probabilities. Boxes
are xyxy pixel *edges* (a mask covering columns ``a..b`` has ``x1 = a``, ``x2 = b + 1``), the
convention of :mod:`fcnlab.data.targets`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

# Masks pasted at full size per call of ``paste_masks_chunks``: 16 float masks of a 2048x1024
# image take 128 MB, whatever the number of detections.
PASTE_CHUNK = 16


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes (K, 4) float32 xyxy pixel edges around the pixels of each bool mask (K, H, W).

    An empty mask gets the box (0, 0, 0, 0).
    """
    if masks.dim() != 3:
        raise ValueError(f"masks_to_boxes needs (K, H, W) masks, got shape {tuple(masks.shape)}")
    masks = masks.bool()
    k, height, width = masks.shape
    if k == 0:
        return torch.zeros(0, 4, device=masks.device)
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (K, H), (K, W)
    # argmax of an int row finds its first True; of the flipped row, the last.
    x1 = cols.int().argmax(dim=1)
    x2 = width - cols.flip(1).int().argmax(dim=1)
    y1 = rows.int().argmax(dim=1)
    y2 = height - rows.flip(1).int().argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    return torch.where(rows.any(dim=1)[:, None], boxes, torch.zeros_like(boxes))


def mask_iou(masks1: torch.Tensor, masks2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU (K1, K2) of binary masks (K1, H, W) and (K2, H, W); 0 where both are empty.

    One matrix product over the flattened masks (intersections), so it runs as one BLAS call.
    """
    if masks1.shape[1:] != masks2.shape[1:]:
        raise ValueError(
            f"mask_iou needs masks of one size, got {tuple(masks1.shape[1:])} and "
            f"{tuple(masks2.shape[1:])}"
        )
    a = masks1.flatten(1).float()
    b = masks2.flatten(1).float()
    intersection = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.zeros_like(union))


def dice_loss(predicted: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Dice loss per mask (K,): ``1 - 2 sum(p t) / (sum(p^2) + sum(t^2))`` over each mask's pixels.

    ``predicted`` (K, ...) are probabilities, ``target`` (K, ...) binary or soft masks. The squared
    denominator is V-Net's (Milletari et al. 2016), the form CondInst and SOLOv2 use; ``eps`` keeps
    a pair of empty masks at a loss of 0 instead of NaN.
    """
    if predicted.shape != target.shape:
        raise ValueError(
            f"dice_loss needs predictions and targets of one shape, got "
            f"{tuple(predicted.shape)} and {tuple(target.shape)}"
        )
    p = predicted.flatten(1)
    t = target.flatten(1).to(p.dtype)
    intersection = (p * t).sum(1)
    denominator = (p * p).sum(1) + (t * t).sum(1)
    return 1 - (2 * intersection + eps) / (denominator + eps)


def paste_masks_chunks(
    probabilities: torch.Tensor,
    stride: int,
    image_size: Sequence[int],
    out_size: Sequence[int] | None = None,
    threshold: float = 0.5,
    chunk: int = PASTE_CHUNK,
) -> Iterator[torch.Tensor]:
    """Binary masks at ``out_size`` from mask probabilities (K, h, w) at ``stride`` input pixels
    per cell, ``chunk`` masks at a time (bool (k, H, W) each).

    Cell (x, y) covers input pixels [x s, (x+1) s) x [y s, (y+1) s): the probabilities are upsampled
    bilinearly by ``stride`` (pixel centres aligned), cropped at the bottom/right to
    ``image_size`` (H, W) (a batch's padding), resized bilinearly to ``out_size`` (the image as
    stored; default: ``image_size``) and thresholded. Only ``chunk`` float masks exist at full size
    at once, so a 2048x1024 image with 100 detections never holds 100 float masks of its size.
    """
    if probabilities.dim() != 3:
        raise ValueError(
            f"paste_masks_chunks needs (K, h, w) probabilities, got {tuple(probabilities.shape)}"
        )
    height, width = (int(v) for v in image_size)
    out_h, out_w = (height, width) if out_size is None else (int(v) for v in out_size)
    for start in range(0, len(probabilities), chunk):
        part = probabilities[start : start + chunk, None].float()
        if stride != 1:
            part = F.interpolate(part, scale_factor=stride, mode="bilinear", align_corners=False)
        if part.shape[-2] < height or part.shape[-1] < width:
            raise ValueError(
                f"masks of {tuple(probabilities.shape[-2:])} cells at stride {stride} cover "
                f"{tuple(part.shape[-2:])} pixels, less than the image's {(height, width)}"
            )
        part = part[..., :height, :width]
        if (out_h, out_w) != (height, width):
            part = F.interpolate(part, size=(out_h, out_w), mode="bilinear", align_corners=False)
        yield part[:, 0] >= threshold


def paste_masks(
    probabilities: torch.Tensor,
    stride: int,
    image_size: Sequence[int],
    out_size: Sequence[int] | None = None,
    threshold: float = 0.5,
) -> torch.Tensor:
    """All of :func:`paste_masks_chunks` at once: bool (K, H, W) at ``out_size``."""
    height, width = (int(v) for v in (image_size if out_size is None else out_size))
    pasted = list(paste_masks_chunks(probabilities, stride, image_size, out_size, threshold))
    if not pasted:
        return torch.zeros(0, height, width, dtype=torch.bool, device=probabilities.device)
    return torch.cat(pasted)
