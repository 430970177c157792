"""Instance segmentation models: a mask for every object, the fully convolutional way.

Importing this package registers CondInst in ``MODELS``. ``MaskBranch`` (the mask features
shared by all instances) and the dynamic mask head are separate so other instance models reuse
them. A model's ``forward`` returns raw outputs; ``loss(outputs, targets)`` and
``decode(outputs, image_size)`` turn them into losses and into per-image boxes, scores, labels
and mask probabilities at ``model.mask_stride``.
"""

from __future__ import annotations

from fcnlab.models.instance.condinst import CondInst, masks_at_stride
from fcnlab.models.instance.dynamic import (
    dynamic_head_inputs,
    dynamic_mask_head,
    dynamic_params_count,
    relative_coordinates,
)
from fcnlab.models.instance.mask_branch import MaskBranch, upsample_cells

__all__ = [
    "CondInst",
    "MaskBranch",
    "dynamic_head_inputs",
    "dynamic_mask_head",
    "dynamic_params_count",
    "masks_at_stride",
    "relative_coordinates",
    "upsample_cells",
]
