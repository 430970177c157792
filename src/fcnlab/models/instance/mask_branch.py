"""The mask-feature branch shared by all instances of an image (CondInst's "mask branch").

Pyramid levels at several strides are each refined by a 3x3 conv-BN-ReLU, brought to the finest
level's grid by bilinear upsampling and summed; a tower of 3x3 conv-BN-ReLU and a 1x1
convolution make the mask features every per-instance head reads. CondInst (Tian et al. 2020,
https://arxiv.org/abs/2003.05664) uses P3-P5, 128 channels, a tower of 4 and 8 output channels
at stride 8 (AdelaiDet's ``MODEL.CONDINST.MASK_BRANCH`` defaults). The same module with other
settings is the start of SOLOv2's unified mask-feature branch (P2-P5 at stride 4, GroupNorm).

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
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        strides: Sequence[int] = MASK_BRANCH_STRIDES,
        channels: int = 128,
        out_channels: int = 8,
        depth: int = 4,
        norm: Norm = nn.BatchNorm2d,
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
        self.strides, self.out_stride, self.out_channels = strides, strides[0], out_channels
        self.refine = nn.ModuleList(
            nn.Sequential(*conv_norm_relu(c, channels, 3, norm=norm, bias=False))
            for c in in_channels
        )
        tower: list[nn.Module] = []
        for _ in range(depth):
            tower += conv_norm_relu(channels, channels, 3, norm=norm, bias=False)
        self.tower = nn.Sequential(*tower, nn.Conv2d(channels, out_channels, 1))
        for module in [*self.refine.modules(), *self.tower[:-1].modules()]:
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
        size = levels[0].shape[-2:]
        x = self.refine[0](levels[0])
        rest = levels[1 : len(self.strides)]
        for refine, level, stride in zip(self.refine[1:], rest, self.strides[1:], strict=True):
            x = x + upsample_cells(refine(level), stride // self.out_stride, size)
        return self.tower(x)
