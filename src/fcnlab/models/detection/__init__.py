"""Object detectors and what they share: target checking and assignment, losses (pure
functions), box decoding.

Importing this package registers CenterNet and FCOS in ``MODELS``. A detector's ``forward``
returns its raw head maps; ``loss(outputs, targets)`` and ``decode(outputs, image_size)`` turn
them into losses and into per-image boxes, scores and labels.
"""

from __future__ import annotations

from fcnlab.models.detection.centernet import CenterNet
from fcnlab.models.detection.decoding import ltrb_to_boxes
from fcnlab.models.detection.fcos import FCOS
from fcnlab.models.detection.losses import (
    giou_loss,
    penalty_reduced_focal_loss,
    sigmoid_focal_loss,
)
from fcnlab.models.detection.targets import (
    BACKGROUND,
    IGNORE,
    centerness_target,
    centernet_targets,
    check_batch,
    check_target,
    check_targets,
    draw_gaussians,
    fcos_batch_targets,
    fcos_locations,
    fcos_targets,
    gaussian_radius,
)

__all__ = [
    "BACKGROUND",
    "FCOS",
    "IGNORE",
    "CenterNet",
    "centerness_target",
    "centernet_targets",
    "check_batch",
    "check_target",
    "check_targets",
    "draw_gaussians",
    "fcos_batch_targets",
    "fcos_locations",
    "fcos_targets",
    "gaussian_radius",
    "giou_loss",
    "ltrb_to_boxes",
    "penalty_reduced_focal_loss",
    "sigmoid_focal_loss",
]
