"""The numbers behind the lesson's pictures, computed with fcnlab's own ops on real tensors.

Every figure in ``fcnlab.viz.lesson_figures`` draws one of these results and nothing else, so a
picture cannot disagree with the code; the tests check these functions against hand-worked values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fcnlab.nn import MaxPool2d, MaxUnpool2d
from fcnlab.ops import (
    conv2d_matrix,
    conv_transpose_output_padding,
    interpolation_kernel,
    is_checkerboard_free,
    transpose_conv_overlap,
    upsample,
    zero_insert,
)

INTERPOLATION_MODES = ("nearest", "bilinear", "bicubic")
CHECKERBOARD_PAIRS = ((3, 2), (4, 2), (5, 2), (6, 3))


def counting_grid(size: int = 4) -> torch.Tensor:
    """The (1, 1, size, size) float64 image holding 1, 2, ..., size**2 in row-major order."""
    return torch.arange(1.0, size * size + 1.0, dtype=torch.float64).view(1, 1, size, size)


@dataclass(frozen=True)
class ZeroInsertionExample:
    """Upsampling x2 by zero insertion: ``result`` is ``zero_inserted`` convolved by ``kernel``."""

    image: torch.Tensor  # (H, W)
    zero_inserted: torch.Tensor  # (2H, 2W)
    kernel: torch.Tensor  # (3, 3)
    result: torch.Tensor  # (2H - 1, 2W - 1): align_corners=True keeps the corner samples


def zero_insertion_example(size: int = 4) -> ZeroInsertionExample:
    """The lecture's example: the grid 1..16, zero-inserted to 8x8, convolved with the 3x3 tent.

    With ``align_corners=True`` the output holds the input samples at even positions and the
    averages of their neighbours in between (row 0 reads 1, 1.5, 2, ..., 4); it is 7x7 because
    the eighth zero-inserted row and column lie beyond the last sample.
    """
    grid = counting_grid(size)
    kernel = interpolation_kernel("bilinear", 2, align_corners=True)
    result = upsample(grid, 2, "bilinear", align_corners=True, method="zero_insert")
    return ZeroInsertionExample(grid[0, 0], zero_insert(grid, 2)[0, 0], kernel, result[0, 0])


def zone_plate(size: int = 32, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A (size, size) zone plate in [0, 1]: rings up to 1/4 cycle per pixel at the edge.

    ``0.5 + 0.5 cos(pi r^2 / (2 size))``, r measured from the centre in pixels; every frequency
    from zero up to half of Nyquist appears, so each interpolation's blur and blockiness show.
    """
    centre = (size - 1) / 2.0
    coords = torch.arange(size, dtype=dtype) - centre
    r2 = coords.view(-1, 1) ** 2 + coords.view(1, -1) ** 2
    return 0.5 + 0.5 * torch.cos(math.pi * r2 / (2.0 * size))


def upsampled_images(
    image: torch.Tensor, factor: int = 4, modes: tuple[str, ...] = INTERPOLATION_MODES
) -> dict[str, torch.Tensor]:
    """``image`` (H, W) upsampled by ``factor`` with each mode, by zero insertion + filter."""
    x = image.view(1, 1, *image.shape)
    return {mode: upsample(x, factor, mode, method="zero_insert")[0, 0] for mode in modes}


@dataclass(frozen=True)
class UnpoolingExample:
    """2x2 max pooling that records where each maximum was, and the unpooling that uses it."""

    image: torch.Tensor  # (4, 4)
    pooled: torch.Tensor  # (2, 2)
    indices: torch.Tensor  # (2, 2) flat positions into the (4, 4) image
    unpooled: torch.Tensor  # (4, 4), the maxima back in place, zeros elsewhere


UNPOOLING_IMAGE = (
    (1.0, 3.0, 2.0, 1.0),
    (4.0, 2.0, 0.0, 6.0),
    (5.0, 1.0, 3.0, 2.0),
    (0.0, 2.0, 7.0, 1.0),
)


def max_unpooling_example(image: torch.Tensor | None = None) -> UnpoolingExample:
    """SegNet's memory: ``MaxPool2d(2, return_indices=True)`` then ``MaxUnpool2d(2)`` on (4, 4)."""
    if image is None:
        image = torch.tensor(UNPOOLING_IMAGE)
    if image.shape != (4, 4):
        raise ValueError(f"the unpooling example needs a (4, 4) image, got {tuple(image.shape)}")
    pooled, indices = MaxPool2d(2, return_indices=True)(image.view(1, 1, 4, 4))
    unpooled = MaxUnpool2d(2)(pooled, indices, output_size=(4, 4))
    return UnpoolingExample(image, pooled[0, 0], indices[0, 0], unpooled[0, 0])


@dataclass(frozen=True)
class ConvMatrixExample:
    """A strided convolution as the matrix C and its transpose convolution as C^T."""

    weight: torch.Tensor  # (3, 3), taps 1..9
    stride: int
    padding: int
    output_padding: int  # what conv_transpose2d needs to restore the input size
    matrix: torch.Tensor  # C, (H_out*W_out, H*W)
    taps: torch.Tensor  # same shape as C: 1-based tap index of each non-zero, 0 elsewhere
    y: torch.Tensor  # (H_out, W_out), the vector C^T is applied to
    transposed: torch.Tensor  # (H, W): C^T vec(y) reshaped
    reference: torch.Tensor  # (H, W): F.conv_transpose2d(y, weight, ...)


def conv_matrix_example(
    input_size: int = 4, stride: int = 2, padding: int = 1
) -> ConvMatrixExample:
    """C for a 3x3 convolution with taps 1..9 on ``input_size``^2, and the C^T-vs-op check.

    Running ``conv2d_matrix`` on the tap numbers themselves labels every non-zero of C with the
    tap it came from; ``y`` holds 1, 2, ... so the products stay readable integers.
    """
    weight = torch.arange(1.0, 10.0, dtype=torch.float64).view(1, 1, 3, 3)
    matrix = conv2d_matrix(weight, input_size, stride, padding)
    taps = conv2d_matrix(torch.arange(1.0, 10.0).view(1, 1, 3, 3), input_size, stride, padding)
    out = math.isqrt(matrix.shape[0])
    y = torch.arange(1.0, out * out + 1.0, dtype=torch.float64).view(1, 1, out, out)
    transposed = (matrix.T @ y.flatten()).view(input_size, input_size)
    output_padding = conv_transpose_output_padding(input_size, 3, stride, padding)[0]
    reference = F.conv_transpose2d(
        y, weight, stride=stride, padding=padding, output_padding=output_padding
    )
    return ConvMatrixExample(
        weight[0, 0],
        stride,
        padding,
        output_padding,
        matrix,
        taps.round().long(),
        y[0, 0],
        transposed,
        reference[0, 0],
    )


@dataclass(frozen=True)
class CheckerboardExample:
    """A transpose convolution of a constant input with a constant kernel, and its overlaps."""

    kernel_size: int
    stride: int
    overlap: torch.Tensor  # (H_out, W_out) int64: footprints covering each output pixel
    output: torch.Tensor  # (H_out, W_out): conv_transpose2d(ones, weight, bias)
    bias: float
    checkerboard_free: bool


def checkerboard_example(
    kernel_size: int, stride: int, input_size: int = 4, bias: float = 0.5
) -> CheckerboardExample:
    """Overlap counts and the output on ``ones(input_size^2)`` with kernel ``(s/k)^2`` + ``bias``.

    The kernel value ``(s/k)^2`` makes the average output 1 + bias for every pair, so the panels
    share one colour scale; the bias shifts every pixel equally and leaves the pattern intact.
    """
    weight = torch.full((1, 1, kernel_size, kernel_size), (stride / kernel_size) ** 2)
    ones = torch.ones(1, 1, input_size, input_size, dtype=torch.float64)
    output = F.conv_transpose2d(
        ones, weight.double(), torch.tensor([bias], dtype=torch.float64), stride=stride
    )
    return CheckerboardExample(
        kernel_size,
        stride,
        transpose_conv_overlap(kernel_size, stride, input_size),
        output[0, 0],
        bias,
        is_checkerboard_free(kernel_size, stride),
    )


def interior(values: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The part of a transpose convolution's output that every footprint family reaches.

    The outer ``kernel_size - 1`` pixels on each side see fewer inputs because the input ends there,
    not because of the stride; the checkerboard is judged on what is left.
    """
    margin = kernel_size - 1
    return values[margin : values.shape[0] - margin, margin : values.shape[1] - margin]
