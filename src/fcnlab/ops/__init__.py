"""Pure functions on tensors: the primitives of fully convolutional networks."""

from __future__ import annotations

from fcnlab.ops.boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    generalized_box_iou,
    nms,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)
from fcnlab.ops.kernels import (
    bilinear_kernel,
    interpolation_kernel,
    interpolation_taps,
    kernel_origin,
)
from fcnlab.ops.masks import dice_loss, mask_iou, masks_to_boxes, paste_masks
from fcnlab.ops.matrix import (
    conv2d_matrix,
    conv_transpose_output_padding,
    is_checkerboard_free,
    transpose_conv_overlap,
)
from fcnlab.ops.matrix_nms import matrix_nms
from fcnlab.ops.upsample import transposed_upsample, upsample, zero_insert

__all__ = [
    "batched_nms",
    "bilinear_kernel",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "conv2d_matrix",
    "conv_transpose_output_padding",
    "cxcywh_to_xyxy",
    "dice_loss",
    "generalized_box_iou",
    "interpolation_kernel",
    "interpolation_taps",
    "is_checkerboard_free",
    "kernel_origin",
    "mask_iou",
    "masks_to_boxes",
    "matrix_nms",
    "nms",
    "paste_masks",
    "transpose_conv_overlap",
    "transposed_upsample",
    "upsample",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
    "zero_insert",
]
