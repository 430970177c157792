"""The mask-feature branch shared by all instances of an image (CondInst's "mask branch").

Pyramid levels at several strides are each refined by a 3x3 conv-BN-ReLU, brought to the finest
level's grid by bilinear upsampling and summed; a tower of 3x3 conv-BN-ReLU and a 1x1
convolution make the mask features every per-instance head reads. CondInst (Tian et al. 2020,
https://arxiv.org/abs/2003.05664) uses P3-P5, 128 channels, a tower of 4 and 8 output channels
at stride 8 (AdelaiDet's ``MODEL.CONDINST.MASK_BRANCH`` defaults). The same module with three
options is SOLOv2's unified mask-feature branch (Wang et al. 2020, https://arxiv.org/abs/2003.10152,
the authors' ``MaskFeatHead``): P2-P5 at stride 4 with GroupNorm, ``upsample_stacks`` (a level
2^n times coarser than P2 climbs n steps of 3x3 conv-norm-ReLU and x2 upsampling instead of one
conv and one upsampling), ``coordinates`` (two normalised coordinate channels on the coarsest
level's input) and ``output_norm`` (the 1x1 output convolution followed by the norm and ReLU).

Grids: a cell (x, y) of a map at stride s covers input pixels [x s, (x+1) s) x [y s, (y+1) s).
``upsample_cells`` keeps that true across strides (bilinear with pixel centres aligned, then
cropped or extended by edge cells to the finer grid's exact size, so any input size works).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.blocks import Norm, conv_norm_relu, fit_size

# CondInst's mask branch (AdelaiDet's defaults): P3-P5 in, 128 channels, 4 tower convs, 8 out.
MASK_BRANCH_STRIDES = (8, 16, 32)


def coordinate_channels(x: torch.Tensor) -> torch.Tensor:
    """(N, 2, h, w) normalised cell coordinates of a map ``x`` (N, C, h, w): channel 0 is x,
    channel 1 y, each running from -1 (first cell) to 1 (last cell) in equal steps.

    CoordConv's channels (Liu et al. 2018) with the values of SOLO's authors' ``torch.linspace(-1,
    1, w)``: what lets a translation-invariant convolution tell where in the image it is. Made
    from ``arange`` and tensor arithmetic, as ``torch.export`` fixes a traced ``linspace``'s
    length to the sample's.
    """
    n, _, h, w = x.shape
    xs, ys = (unit_range(length, x) for length in (w, h))
    grid = torch.stack((xs[None, :].expand(h, w), ys[:, None].expand(h, w)))
    return grid[None].expand(n, 2, h, w)


def unit_range(length: int, like: torch.Tensor) -> torch.Tensor:
    """``length`` evenly spaced values from -1 to 1 (-1 alone for one), ``like``'s device and
    dtype."""
    steps = torch.arange(length, device=like.device, dtype=like.dtype)
    return steps * 2 / steps[-1:].clamp(min=1) - 1


def upsample_cells(x: torch.Tensor, factor: int, size: Sequence[int]) -> torch.Tensor:
    """(N, C, h, w) at stride s -> (N, C, H, W) at stride s / ``factor``, cells aligned.

    Bilinear with ``align_corners=False``: the centre of fine cell j, at ``(j + 0.5) s / f``
    input pixels, reads the coarse grid at ``(j + 0.5) / f - 0.5`` cells, its own position. The
    ``factor * h`` rows are then cropped at the bottom/right, or extended by repeating the edge
    row, to ``size`` (H, W): a level of an odd-sized input is a row short or long of twice the
    next finer one, depending on whether the encoder rounds its sizes down or up.
    """
    if factor != 1:
        x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    return fit_size(x, size)


class MaskBranch(nn.Module):
    """Levels at ``strides`` -> mask features (N, ``out_channels``, h, w) at ``strides[0]``.

    ``in_channels`` is the width of the input levels (one int: all the same, as an FPN's);
    ``channels`` the width inside the branch; ``depth`` the 3x3 conv-norm-ReLU of the tower after
    the sum; a final 1x1 convolution (no norm, no ReLU) gives ``out_channels``. ``norm`` is the
    normalisation of every conv-norm-ReLU (batch norm, as AdelaiDet's CondInst). Each level's
    refining convolution runs at its own resolution, before the upsampling, so the coarse levels
    cost little. Convolutions followed by a norm have no bias; their weights start as Caffe2's
    XavierFill (``kaiming_uniform_(a=1)``), as in AdelaiDet.

    SOLOv2's options (all off by default, CondInst's branch): ``upsample_stacks`` refines a level
    at ``strides[0] * 2^n`` by n conv-norm-ReLU, each followed by an x2 upsampling to the next
    finer level's grid (P2 keeps its single convolution), which needs strides that double from
    level to level; ``coordinates`` appends ``coordinate_channels`` to the coarsest level's input;
    ``output_norm`` follows the 1x1 output convolution by ``norm`` and ReLU (and drops its bias).
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        strides: Sequence[int] = MASK_BRANCH_STRIDES,
        channels: int = 128,
        out_channels: int = 8,
        depth: int = 4,
        norm: Norm = nn.BatchNorm2d,
        upsample_stacks: bool = False,
        coordinates: bool = False,
        output_norm: bool = False,
    ) -> None:
        super().__init__()
        strides = tuple(int(s) for s in strides)
        if isinstance(in_channels, int):
            in_channels = [in_channels] * len(strides)
        if len(in_channels) != len(strides):
            raise ValueError(
                f"MaskBranch got in_channels {list(in_channels)} for strides {list(strides)}; "
                "expected one width per level"
            )
        if any(s % strides[0] for s in strides):
            raise ValueError(
                f"MaskBranch strides {list(strides)} must be multiples of the first (the output's)"
            )
        doubling = tuple(strides[0] * 2**k for k in range(len(strides)))
        if upsample_stacks and strides != doubling:
            raise ValueError(
                f"MaskBranch with upsample_stacks needs strides that double from level to level "
                f"({list(doubling)}), got {list(strides)}"
            )
        self.strides, self.out_stride, self.out_channels = strides, strides[0], out_channels
        self.upsample_stacks, self.coordinates = upsample_stacks, coordinates
        widths = [*in_channels[:-1], in_channels[-1] + 2 * coordinates]

        def unit(width: int) -> nn.Sequential:
            return nn.Sequential(*conv_norm_relu(width, channels, 3, norm=norm, bias=False))

        if upsample_stacks:
            self.refine = nn.ModuleList(
                nn.Sequential(*(unit(c if j == 0 else channels) for j in range(max(k, 1))))
                for k, c in enumerate(widths)
            )
        else:
            self.refine = nn.ModuleList(unit(c) for c in widths)
        tower: list[nn.Module] = []
        for _ in range(depth):
            tower += conv_norm_relu(channels, channels, 3, norm=norm, bias=False)
        if output_norm:
            tower += conv_norm_relu(channels, out_channels, 1, norm=norm, bias=False)
        else:
            tower.append(nn.Conv2d(channels, out_channels, 1))
        self.tower = nn.Sequential(*tower)
        normed = self.tower if output_norm else self.tower[:-1]
        for module in [*self.refine.modules(), *normed.modules()]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)

    def forward(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """[(N, C_k, h_k, w_k) at ``strides[k]``, ...] -> (N, out_channels, h_0, w_0).

        Levels beyond ``len(strides)`` are ignored, so a whole pyramid [P3, ..., P7] can be
        passed.
        """
        if len(levels) < len(self.strides):
            raise ValueError(
                f"MaskBranch needs {len(self.strides)} levels (strides {list(self.strides)}), "
                f"got {len(levels)}"
            )
        levels = list(levels[: len(self.strides)])
        if self.coordinates:
            levels[-1] = torch.cat((levels[-1], coordinate_channels(levels[-1])), dim=1)
        sizes = [level.shape[-2:] for level in levels]
        x = self.refine[0](levels[0])
        for k in range(1, len(levels)):
            x = x + self.refine_level(k, levels[k], sizes)
        return self.tower(x)

    def refine_level(
        self, k: int, level: torch.Tensor, sizes: Sequence[Sequence[int]]
    ) -> torch.Tensor:
        """Level ``k`` (N, C, h_k, w_k) refined and upsampled to the output grid ``sizes[0]``;
        ``sizes`` are the input levels' (h, w), whose grids an upsampling stack climbs."""
        if not self.upsample_stacks:
            return upsample_cells(
                self.refine[k](level), self.strides[k] // self.out_stride, sizes[0]
            )
        x = level
        for unit, size in zip(self.refine[k], sizes[k - 1 :: -1], strict=True):
            x = upsample_cells(unit(x), 2, size)
        return x
