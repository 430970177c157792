"""Interpolation filters for integer-factor upsampling by zero insertion.

Upsampling a signal by an integer factor ``f`` is two steps: insert ``f - 1`` zeros between
samples, then convolve with an interpolation filter. The filters below are exactly the ones that
make that two-step recipe equal to PyTorch's ``F.interpolate`` (nearest, bilinear, and bicubic
with Keys' coefficient a = -0.75).
"""

from __future__ import annotations

import math

import torch

MODES = ("nearest", "bilinear", "bicubic")
CUBIC_A = -0.75


def check_factor(factor: int) -> int:
    """Return ``factor`` as an int after checking that it is an integer >= 1."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"upsampling factor must be an integer >= 1, got {factor!r}")
    return factor


def check_mode(mode: str, align_corners: bool) -> None:
    """Raise a ValueError for an unknown mode or for ``nearest`` with ``align_corners=True``."""
    if mode not in MODES:
        raise ValueError(f"interpolation mode must be one of {MODES}, got {mode!r}")
    if mode == "nearest" and align_corners:
        # The same rule as F.interpolate: nearest sampling has no corner convention.
        raise ValueError(
            "align_corners=True is only valid for 'bilinear' and 'bicubic', not 'nearest'"
        )


def _tent(t: float) -> float:
    return max(0.0, 1.0 - abs(t))


def _keys_cubic(t: float, a: float = CUBIC_A) -> float:
    t = abs(t)
    if t <= 1.0:
        return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    if t < 2.0:
        return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a
    return 0.0


def kernel_origin(kernel_size: int, factor: int, align_corners: bool = False) -> int:
    """Index of the tap that multiplies the zero-inserted sample at the output's own position.

    With ``align_corners=False`` output pixel ``j`` sits at input coordinate
    ``(j + 0.5) / f - 0.5``, so a symmetric kernel is centred half a pixel off the grid: the
    origin is ``(k + f - 1) // 2`` (for FCN's 4-tap x2 kernel it is 2). With
    ``align_corners=True`` the kernel is centred: ``(k - 1) // 2``.
    """
    if align_corners:
        return (kernel_size - 1) // 2
    return (kernel_size + factor - 1) // 2


def interpolation_taps(
    mode: str, factor: int, align_corners: bool = False, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The 1-D interpolation filter (length k) whose outer product is ``interpolation_kernel``."""
    check_factor(factor)
    check_mode(mode, align_corners)
    f = factor
    if mode == "nearest":
        # PyTorch's nearest takes x[floor(j / f)]: a box of f taps ending at the output position.
        return torch.ones(f, dtype=dtype)
    profile, radius = (_tent, 1) if mode == "bilinear" else (_keys_cubic, 2)
    centre = 0.0 if align_corners else (f - 1) / 2.0
    # Taps strictly inside the support: the end points are exact zeros of both profiles.
    lo = math.floor(centre - radius * f) + 1
    hi = math.ceil(centre + radius * f) - 1
    # Taps are stored flipped (index t <-> offset origin - t) so that correlation, which is what
    # conv2d computes, applies them as a convolution; the profiles are symmetric, so it is moot.
    values = [profile((d - centre) / f) for d in range(hi, lo - 1, -1)]
    return torch.tensor(values, dtype=dtype)


def interpolation_kernel(
    mode: str, factor: int, align_corners: bool = False, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The 2-D filter (k, k) that, convolved with the zero-inserted image, performs ``mode``.

    For bilinear x2 with ``align_corners=True`` this is ``[[.25,.5,.25],[.5,1,.5],[.25,.5,.25]]``;
    with ``align_corners=False`` it is FCN's 4x4 kernel ``outer([.25,.75,.75,.25])``. Its origin
    (the tap aligned with the output pixel) is ``kernel_origin(k, factor, align_corners)``.
    """
    taps = interpolation_taps(mode, factor, align_corners, dtype)
    return torch.outer(taps, taps)


def bilinear_kernel(factor: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """FCN's bilinear initialisation for learned upsampling: a (k, k) kernel, k = 2f - f % 2.

    For f=2 it is ``outer([.25,.75,.75,.25])``; for f=3 ``outer([1/3,2/3,1,2/3,1/3])``
    (Long et al., the ``upsample_filt`` of the reference FCN code).
    """
    check_factor(factor)
    size = 2 * factor - factor % 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1.0 - (torch.arange(size, dtype=dtype) - centre).abs() / factor
    return torch.outer(taps, taps)
