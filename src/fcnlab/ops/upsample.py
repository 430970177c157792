"""Integer-factor upsampling: zero insertion + interpolation filter, and its fast equivalents."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fcnlab.ops.kernels import (
    check_factor,
    check_mode,
    interpolation_taps,
    kernel_origin,
)

METHODS = ("fast", "zero_insert")
EDGES = ("replicate", "zeros")


def _check_nchw(x: torch.Tensor, name: str = "x") -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} must be a 4-D (N, C, H, W) tensor, got shape {tuple(x.shape)}")


def zero_insert(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Insert ``factor - 1`` zeros after every sample: (N, C, H, W) -> (N, C, f*H, f*W).

    ``out[..., ::f, ::f] == x`` and every other entry is zero.
    """
    _check_nchw(x)
    f = check_factor(factor)
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, f * h, f * w)
    out[..., ::f, ::f] = x
    return out


def _output_length(n: int, factor: int, align_corners: bool) -> int:
    return factor * (n - 1) + 1 if align_corners else factor * n


def _support(n: int, k: int, factor: int, align_corners: bool) -> tuple[int, int, int]:
    """(pad_before, pad_after, origin): input pixels a k-tap kernel reads beyond each border."""
    origin = kernel_origin(k, factor, align_corners)
    last = _output_length(n, factor, align_corners) - 1
    # Output j reads input i with j - f*i in [origin - k + 1, origin].
    pad_before = max(0, origin // factor)
    pad_after = max(0, (last - origin + k - 1) // factor - (n - 1))
    return pad_before, pad_after, origin


def _as_kernel2d(kernel: torch.Tensor) -> torch.Tensor:
    if kernel.dim() != 2:
        raise ValueError(f"kernel must be a 2-D (kh, kw) tensor, got shape {tuple(kernel.shape)}")
    return kernel


def _pad(x: torch.Tensor, pads: Sequence[int], edge: str) -> torch.Tensor:
    if edge not in EDGES:
        raise ValueError(f"edge must be one of {EDGES}, got {edge!r}")
    if not any(pads):
        return x
    return F.pad(x, tuple(pads), mode="replicate" if edge == "replicate" else "constant")


def transposed_upsample(
    x: torch.Tensor,
    weight: torch.Tensor,
    factor: int,
    bias: torch.Tensor | None = None,
    groups: int = 1,
    edge: str = "replicate",
    align_corners: bool = False,
) -> torch.Tensor:
    """Transpose convolution with stride ``factor`` whose output is exactly the upsampled size.

    ``weight`` is (C_in, C_out / groups, kh, kw), used as ``F.conv_transpose2d`` uses it; the tap
    of the flipped kernel aligned with each output pixel is ``kernel_origin(k, f, align_corners)``,
    so ``bilinear_kernel(f)`` on the channel diagonal is exactly bilinear interpolation.
    ``edge="replicate"`` extends the input by its border pixels first (no darkened border);
    ``edge="zeros"`` is FCN's zero-padded deconvolution. Output (N, C_out, f*H, f*W), or
    (f*(H-1)+1, f*(W-1)+1) with ``align_corners=True``.
    """
    _check_nchw(x)
    f = check_factor(factor)
    kh, kw = weight.shape[-2:]
    h, w = x.shape[-2:]
    top, bottom, oy = _support(h, kh, f, align_corners)
    left, right, ox = _support(w, kw, f, align_corners)
    xp = _pad(x, (left, right, top, bottom), edge)
    # Full transpose-conv output index of output pixel 0: f * pad_before + (k - 1 - origin).
    crop_top, crop_left = f * top + kh - 1 - oy, f * left + kw - 1 - ox
    out_h, out_w = _output_length(h, f, align_corners), _output_length(w, f, align_corners)
    full_h = (h + top + bottom - 1) * f + kh
    full_w = (w + left + right - 1) * f + kw
    crop_bottom, crop_right = full_h - crop_top - out_h, full_w - crop_left - out_w
    # conv_transpose2d's padding crops symmetrically for free; only the remainder is sliced.
    pad_h, pad_w = min(crop_top, crop_bottom), min(crop_left, crop_right)
    y = F.conv_transpose2d(xp, weight, bias, stride=f, padding=(pad_h, pad_w), groups=groups)
    y0, x0 = crop_top - pad_h, crop_left - pad_w
    if (y0, x0) == (0, 0) and y.shape[-2:] == (out_h, out_w):
        return y
    return y[..., y0 : y0 + out_h, x0 : x0 + out_w]


def _depthwise(kernel: torch.Tensor, channels: int, like: torch.Tensor) -> torch.Tensor:
    k = kernel.to(dtype=like.dtype, device=like.device)
    return k.expand(channels, 1, *k.shape).contiguous()


def _zero_insert_upsample(
    x: torch.Tensor,
    kernel: torch.Tensor,
    factor: int,
    align_corners: bool,
    taps: torch.Tensor | None = None,
) -> torch.Tensor:
    """The textbook path: replicate the border, insert zeros, convolve, crop.

    With ``taps`` (the 1-D filter whose outer product is ``kernel``) the 2-D convolution runs
    as two 1-D ones: the same sums, k times fewer multiplications.
    """
    f = factor
    kh, kw = kernel.shape
    h, w = x.shape[-2:]
    top, bottom, oy = _support(h, kh, f, align_corners)
    left, right, ox = _support(w, kw, f, align_corners)
    # Enough extra zero-inserted samples that the valid convolution covers every output pixel.
    top, left = max(top, -(-oy // f)), max(left, -(-ox // f))
    bottom, right = bottom + 1, right + 1
    z = zero_insert(_pad(x, (left, right, top, bottom), "replicate"), f)
    c = x.shape[1]
    y0, x0 = f * top - oy, f * left - ox
    out_h, out_w = _output_length(h, f, align_corners), _output_length(w, f, align_corners)
    if taps is None:
        y = F.conv2d(z, _depthwise(kernel, c, x), groups=c)
        return y[..., y0 : y0 + out_h, x0 : x0 + out_w]
    column = _depthwise(taps.view(-1, 1), c, x)
    z = F.conv2d(z[..., :, x0 : x0 + out_w + kw - 1], _depthwise(taps.view(1, -1), c, x), groups=c)
    return F.conv2d(z[..., y0 : y0 + out_h + kh - 1, :], column, groups=c)


def upsample(
    x: torch.Tensor,
    factor: int,
    mode: str = "bilinear",
    align_corners: bool = False,
    method: str = "fast",
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Upsample (N, C, H, W) by an integer factor; equals ``F.interpolate`` for every mode.

    ``method="zero_insert"`` literally inserts zeros and convolves with ``interpolation_kernel``
    (border pixels replicated first), the textbook path. ``method="fast"`` never builds the
    zero-inserted tensor: it is ``F.interpolate`` itself, or for a user ``kernel`` (kh, kw) a
    depthwise transposed convolution. With ``align_corners=True`` the output is ``f*(n-1)+1`` long.
    """
    _check_nchw(x)
    f = check_factor(factor)
    check_mode(mode, align_corners)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if kernel is None and method == "fast":
        if mode == "nearest":
            return F.interpolate(x, scale_factor=f, mode="nearest")
        if align_corners:
            size = (f * (x.shape[-2] - 1) + 1, f * (x.shape[-1] - 1) + 1)
            return F.interpolate(x, size=size, mode=mode, align_corners=True)
        return F.interpolate(x, scale_factor=f, mode=mode, align_corners=False)
    taps = None
    if kernel is None:
        taps = interpolation_taps(mode, f, align_corners, dtype=x.dtype).to(x.device)
        kernel = torch.outer(taps, taps)
    kernel = _as_kernel2d(kernel).to(dtype=x.dtype, device=x.device)
    if method == "zero_insert":
        return _zero_insert_upsample(x, kernel, f, align_corners, taps)
    c = x.shape[1]
    # Correlating the zero-inserted image with K is a transpose convolution with K flipped.
    weight = _depthwise(kernel.flip(-2, -1), c, x)
    return transposed_upsample(x, weight, f, groups=c, align_corners=align_corners)
