"""What the detectors share: target checking and assignment, losses (pure functions)."""

from __future__ import annotations

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
    check_target,
    draw_gaussians,
    fcos_locations,
    fcos_targets,
    gaussian_radius,
)

__all__ = [
    "BACKGROUND",
    "IGNORE",
    "centerness_target",
    "centernet_targets",
    "check_target",
    "draw_gaussians",
    "fcos_locations",
    "fcos_targets",
    "gaussian_radius",
    "giou_loss",
    "penalty_reduced_focal_loss",
    "sigmoid_focal_loss",
]
