"""Pure functions on tensors: the primitives of fully convolutional networks."""

from __future__ import annotations

from fcnlab.ops.kernels import (
    bilinear_kernel,
    interpolation_kernel,
    interpolation_taps,
    kernel_origin,
)
from fcnlab.ops.matrix import (
    conv2d_matrix,
    conv_transpose_output_padding,
    is_checkerboard_free,
    transpose_conv_overlap,
)
from fcnlab.ops.upsample import transposed_upsample, upsample, zero_insert

__all__ = [
    "bilinear_kernel",
    "conv2d_matrix",
    "conv_transpose_output_padding",
    "interpolation_kernel",
    "interpolation_taps",
    "is_checkerboard_free",
    "kernel_origin",
    "transpose_conv_overlap",
    "transposed_upsample",
    "upsample",
    "zero_insert",
]
