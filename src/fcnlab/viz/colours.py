"""Colouring masks: class indices to palette colours, overlays on images, normalised images
back to RGB.

A palette is a ``(K, 3)`` array of uint8 colours, one per class; pixels labelled
``ignore_index`` are drawn in ``IGNORE_COLOR`` (white), so they never pass for a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

IGNORE_COLOR = (255, 255, 255)
ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]


def to_numpy(value: ArrayLike) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a NumPy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def as_palette(palette: ArrayLike) -> np.ndarray:
    """``palette`` as (K, 3) uint8 RGB colours; a ValueError for any other shape."""
    colours = to_numpy(palette)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(f"palette must be (K, 3) RGB colours, got shape {colours.shape}")
    return colours.astype(np.uint8)


def colorize(
    mask: ArrayLike,
    palette: ArrayLike,
    ignore_index: int | None = 255,
    ignore_color: tuple[int, int, int] = IGNORE_COLOR,
) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB: ``palette[c]``, ``ignore_color`` if ignored."""
    labels = to_numpy(mask).astype(np.int64)
    colours = as_palette(palette)
    ignored = labels == ignore_index if ignore_index is not None else np.zeros(labels.shape, bool)
    bad = ~ignored & ((labels < 0) | (labels >= len(colours)))
    if bad.any():
        found = ", ".join(str(v) for v in np.unique(labels[bad])[:10])
        raise ValueError(
            f"mask has values {found} outside the palette's {len(colours)} colours "
            f"(ignore_index {ignore_index})"
        )
    rgb = colours[np.where(ignored, 0, labels)]
    rgb[ignored] = ignore_color
    return rgb


def to_rgb(
    image: ArrayLike,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """An image as (H, W, 3) uint8: from float (3, H, W) in [0, 1] or uint8 (H, W, 3).

    ``mean`` and ``std`` undo a normalisation (``x * std + mean``) before the conversion.
    """
    array = to_numpy(image)
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"a uint8 image must be (H, W, 3), got shape {array.shape}")
        return array
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"a float image must be (3, H, W), got shape {array.shape}")
    array = array.astype(np.float64)
    if std is not None:
        array = array * np.asarray(std, dtype=np.float64)[:, None, None]
    if mean is not None:
        array = array + np.asarray(mean, dtype=np.float64)[:, None, None]
    return np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8).transpose(1, 2, 0)


def overlay(
    image: ArrayLike,
    mask: ArrayLike,
    palette: ArrayLike,
    alpha: float = 0.5,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """The mask's colours blended over the image: ``(1 - alpha) * image + alpha * colour``.

    ``image`` as accepted by :func:`to_rgb` (already denormalised); ignored pixels keep the image.
    Returns (H, W, 3) uint8; ``alpha=0`` is the image, ``alpha=1`` the colorized mask.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    rgb = to_rgb(image)
    colours = colorize(mask, palette, ignore_index)
    if rgb.shape != colours.shape:
        raise ValueError(f"image is {rgb.shape[:2]} but its mask is {colours.shape[:2]}")
    blended = (1 - alpha) * rgb.astype(np.float64) + alpha * colours.astype(np.float64)
    blended = np.round(blended).astype(np.uint8)
    if ignore_index is not None:
        blended[to_numpy(mask) == ignore_index] = rgb[to_numpy(mask) == ignore_index]
    return blended
