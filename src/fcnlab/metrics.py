"""Public face of the segmentation metrics (in :mod:`fcnlab.tasks.segmentation.metrics`)."""

from __future__ import annotations

from fcnlab.runtime.records import json_safe
from fcnlab.tasks.segmentation.metrics import (
    MEANS,
    PER_CLASS,
    ConfusionMatrix,
    check_labels,
    confusion_matrix,
    segmentation_scores,
    valid_mask,
)

__all__ = [
    "MEANS",
    "PER_CLASS",
    "ConfusionMatrix",
    "check_labels",
    "confusion_matrix",
    "json_safe",
    "segmentation_scores",
    "valid_mask",
]
