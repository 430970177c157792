"""Public face of the segmentation losses (in :mod:`fcnlab.tasks.segmentation.losses`)."""

from __future__ import annotations

from fcnlab.tasks.segmentation.losses import (
    LOSSES,
    CombinedLoss,
    CrossEntropyLoss,
    DiceLoss,
    FocalLoss,
    build_loss,
    cross_entropy,
    focal_loss,
    soft_dice_loss,
)

__all__ = [
    "LOSSES",
    "CombinedLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "build_loss",
    "cross_entropy",
    "focal_loss",
    "soft_dice_loss",
]
