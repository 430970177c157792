"""Upsampling layers: fixed interpolation, learned transpose convolution, resize-convolution."""

from __future__ import annotations

import math

import torch
from torch import nn

from fcnlab.ops import (
    bilinear_kernel,
    is_checkerboard_free,
    kernel_origin,
    transposed_upsample,
    upsample,
)
from fcnlab.ops.kernels import check_factor

INITS = ("bilinear", "default", "zeros")


class FixedUpsample(nn.Module):
    """Parameter-free integer upsampling; ``forward`` is ``fcnlab.ops.upsample``."""

    def __init__(self, factor: int, mode: str = "bilinear", align_corners: bool = False) -> None:
        super().__init__()
        self.factor = check_factor(factor)
        self.mode = mode
        self.align_corners = align_corners
        upsample(torch.zeros(1, 1, 1, 1), self.factor, mode, align_corners)  # validate eagerly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, f*H, f*W)."""
        return upsample(x, self.factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}, align_corners={self.align_corners}"


def _embed_bilinear(factor: int, kernel_size: int) -> torch.Tensor:
    """FCN's bilinear kernel placed inside a (k, k) kernel so that its origin lines up."""
    base = bilinear_kernel(factor, dtype=torch.float32)
    kb = base.shape[0]
    offset = kernel_origin(kernel_size, factor) - kernel_origin(kb, factor)
    if offset < 0 or offset + kb > kernel_size:
        raise ValueError(
            f"init='bilinear' needs kernel_size >= {kb} for factor {factor}, got {kernel_size}"
        )
    out = torch.zeros(kernel_size, kernel_size)
    # The kernel is stored as conv_transpose2d uses it, i.e. flipped; the bilinear one is symmetric
    # but its placement is not, so flip the embedding.
    out[offset : offset + kb, offset : offset + kb] = base
    return out.flip(0, 1)


class LearnedUpsample(nn.Module):
    """Learned upsampling: a stride-f transpose convolution whose output is exactly f times larger.

    The default kernel is 2f x 2f, a multiple of the stride, so every output pixel receives the
    same number of contributions (no checkerboard). ``init="bilinear"`` puts FCN's bilinear
    kernel on the channel diagonal: at initialisation, with ``edge="replicate"``, the layer equals
    ``F.interpolate(mode="bilinear", align_corners=False)`` everywhere, borders included (FCN's
    zero-padded deconvolution, ``edge="zeros"``, darkens the border). The bias is added once per
    output pixel, so it cannot even out uneven overlap: a kernel size that is not a multiple of
    the factor raises unless ``allow_checkerboard=True``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        factor: int,
        kernel_size: int | None = None,
        init: str = "bilinear",
        edge: str = "replicate",
        bias: bool = True,
        allow_checkerboard: bool = False,
    ) -> None:
        super().__init__()
        self.factor = check_factor(factor)
        k = 2 * self.factor if kernel_size is None else kernel_size
        if not is_checkerboard_free(k, self.factor) and not allow_checkerboard:
            raise ValueError(
                f"kernel_size {k} is not a multiple of the factor {self.factor}: output "
                "pixels would receive uneven numbers of contributions (a checkerboard) that "
                "the bias, added once per pixel, cannot fix; use a multiple of the factor "
                "or allow_checkerboard=True"
            )
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if edge not in ("replicate", "zeros"):
            raise ValueError(f"edge must be 'replicate' or 'zeros', got {edge!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.edge, self.init = k, edge, init
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels, k, k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as ``init`` says; the bias starts at zero except for ``init="default"``."""
        if self.init == "default":
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.out_channels * self.kernel_size**2)
                nn.init.uniform_(self.bias, -bound, bound)
            return
        with torch.no_grad():
            self.weight.zero_()
            if self.init == "bilinear":
                kernel = _embed_bilinear(self.factor, self.kernel_size)
                for c in range(min(self.in_channels, self.out_channels)):
                    self.weight[c, c] = kernel
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, f*H, f*W)."""
        return transposed_upsample(x, self.weight, self.factor, self.bias, edge=self.edge)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, factor={self.factor}, "
            f"kernel_size={self.kernel_size}, edge={self.edge!r}, init={self.init!r}"
        )


class ResizeConv(nn.Module):
    """Upsample with a fixed interpolation, then convolve: the checkerboard-free alternative."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        factor: int,
        mode: str = "nearest",
        kernel_size: int = 3,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(
                f"ResizeConv needs an odd kernel_size to keep the size, got {kernel_size}"
            )
        self.resize = FixedUpsample(factor, mode)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, f*H, f*W)."""
        return self.conv(self.resize(x))
