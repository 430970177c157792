"""Instance segmentation models: a mask for every object, the fully convolutional way.

Importing this package registers CondInst and SOLOv2 in ``MODELS``. ``MaskBranch`` (the mask
features shared by all instances: CondInst's and, with its SOLOv2 options, SOLOv2's) and the
dynamic mask head are separate so other instance models reuse them. A model's ``forward``
returns raw outputs; ``loss(outputs, targets)`` and ``decode(outputs, image_size)`` turn them
into losses and into per-image boxes, scores, labels and mask probabilities at
``model.mask_stride``.
"""

from __future__ import annotations

from fcnlab.models.instance.condinst import CondInst
from fcnlab.models.instance.dynamic import (
    dynamic_head_inputs,
    dynamic_mask_head,
    dynamic_params_count,
    relative_coordinates,
)
from fcnlab.models.instance.mask_branch import MaskBranch, coordinate_channels, upsample_cells
from fcnlab.models.instance.solov2 import SOLOv2, SOLOv2Head, points_nms, solov2_targets
from fcnlab.models.instance.targets import instance_masks, masks_at_stride

__all__ = [
    "CondInst",
    "MaskBranch",
    "SOLOv2",
    "SOLOv2Head",
    "coordinate_channels",
    "dynamic_head_inputs",
    "dynamic_mask_head",
    "dynamic_params_count",
    "instance_masks",
    "masks_at_stride",
    "points_nms",
    "relative_coordinates",
    "solov2_targets",
    "upsample_cells",
]
