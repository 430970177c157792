"""Convolution as a matrix, transpose convolution as its transpose, and overlap counting."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_output_size(n: int, k: int, stride: int, padding: int) -> int:
    """Length of a convolution's output along one axis."""
    return (n + 2 * padding - k) // stride + 1


def conv2d_matrix(
    weight: torch.Tensor,
    input_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    sparse: bool = False,
) -> torch.Tensor:
    """The matrix C with ``C @ vec(x) == vec(conv2d(x, weight, stride, padding))`` for one image.

    ``weight`` is (C_out, C_in, kh, kw); ``vec`` flattens (C, H, W) in row-major order, so C is
    (C_out*H_out*W_out, C_in*H*W). ``C.T @ vec(y)`` is ``conv_transpose2d(y, weight, ...)`` with
    ``output_padding=conv_transpose_output_padding(...)``: transpose convolution is the transpose.
    Returns a dense matrix, or a sparse COO one with ``sparse=True``.
    """
    if weight.dim() != 4:
        raise ValueError(f"weight must be (C_out, C_in, kh, kw), got shape {tuple(weight.shape)}")
    h, w = _pair(input_size, "input_size")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    c_out, c_in, kh, kw = weight.shape
    oh, ow = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {kh}x{kw} does not fit input {h}x{w} with padding {padding}")
    dev = weight.device
    # Broadcast over (c_out, oy, ox, c_in, ky, kx): every (output pixel, tap) pair.
    co = torch.arange(c_out, device=dev).view(-1, 1, 1, 1, 1, 1)
    oy = torch.arange(oh, device=dev).view(1, -1, 1, 1, 1, 1)
    ox = torch.arange(ow, device=dev).view(1, 1, -1, 1, 1, 1)
    ci = torch.arange(c_in, device=dev).view(1, 1, 1, -1, 1, 1)
    ky = torch.arange(kh, device=dev).view(1, 1, 1, 1, -1, 1)
    kx = torch.arange(kw, device=dev).view(1, 1, 1, 1, 1, -1)
    shape = (c_out, oh, ow, c_in, kh, kw)
    iy = (oy * sh - ph + ky).expand(shape)
    ix = (ox * sw - pw + kx).expand(shape)
    rows = ((co * oh + oy) * ow + ox).expand(shape)
    cols = (ci * h + iy) * w + ix
    values = weight.view(c_out, 1, 1, c_in, kh, kw).expand(shape)
    inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    rows, cols, values = rows[inside], cols[inside], values[inside]
    size = (c_out * oh * ow, c_in * h * w)
    if sparse:
        return torch.sparse_coo_tensor(
            torch.stack([rows, cols]), values, size, check_invariants=True
        ).coalesce()
    matrix = weight.new_zeros(size)
    # Each (row, col) pair occurs at most once, so a plain index_put is exact.
    return matrix.index_put((rows, cols), values)


def conv_transpose_output_padding(
    input_size: int | tuple[int, int],
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[int, int]:
    """The ``output_padding`` that makes ``conv_transpose2d`` restore ``input_size`` exactly."""
    sizes, kernels = _pair(input_size, "input_size"), _pair(kernel_size, "kernel_size")
    strides, pads = _pair(stride, "stride"), _pair(padding, "padding")
    result = []
    for n, k, s, p in zip(sizes, kernels, strides, pads, strict=True):
        out = conv_output_size(n, k, s, p)
        result.append(n - ((out - 1) * s - 2 * p + k))
    return result[0], result[1]


def transpose_conv_overlap(
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int],
    input_size: int | tuple[int, int],
    padding: int | tuple[int, int] = 0,
) -> torch.Tensor:
    """For every output pixel of a transpose convolution, how many input footprints cover it.

    Returns an int64 (H_out, W_out) map, H_out = (H - 1) * stride - 2 * padding + kernel_size.
    Uneven counts in the interior are the checkerboard: see ``is_checkerboard_free``.
    """
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride")
    h, w = _pair(input_size, "input_size")
    ph, pw = _pair(padding, "padding")
    ones = torch.ones(1, 1, h, w, dtype=torch.float64)
    footprint = torch.ones(1, 1, kh, kw, dtype=torch.float64)
    counts = F.conv_transpose2d(ones, footprint, stride=(sh, sw), padding=(ph, pw))
    return counts[0, 0].round().to(torch.int64)


def is_checkerboard_free(kernel_size: int | tuple[int, int], stride: int | tuple[int, int]) -> bool:
    """True when every interior output pixel gets the same number of contributions: k % s == 0."""
    kernels, strides = _pair(kernel_size, "kernel_size"), _pair(stride, "stride")
    return all(k % s == 0 for k, s in zip(kernels, strides, strict=True))
