"""Small layers that several architectures share: conv-norm-ReLU units and towers, size fitting,
the prior-probability bias of sigmoid classifiers.

An architecture file takes its shared pieces from here (and from ``necks`` and ``encoders``),
never from another architecture's file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ConvLayer = Callable[..., nn.Module]
Norm = Callable[[int], nn.Module]


def conv_norm_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    conv: ConvLayer = nn.Conv2d,
    norm: Norm | None = nn.BatchNorm2d,
    bias: bool = True,
) -> list[nn.Module]:
    """The layers of a size-preserving ``conv``, ``norm(out_channels)`` (none if None), ReLU."""
    layers = [conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)]
    if norm is not None:
        layers.append(norm(out_channels))
    return [*layers, nn.ReLU(inplace=True)]


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    conv: ConvLayer = nn.Conv2d,
    batch_norm: bool = True,
    bias: bool = True,
) -> nn.Sequential:
    """A size-preserving ``conv`` (``nn.Conv2d`` or ``nn.ConvTranspose2d``), batch norm, ReLU."""
    norm = nn.BatchNorm2d if batch_norm else None
    return nn.Sequential(*conv_norm_relu(in_channels, out_channels, kernel_size, conv, norm, bias))


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups (Wu & He 2018), fewer for narrow layers.

    The group count divides ``channels // 2``, so a group always holds at least 2 channels and a
    1x1 map (FCOS's P7 on a small input) still has more than one value per group.
    """
    return nn.GroupNorm(math.gcd(32, max(1, channels // 2)), channels)


def tower(
    in_channels: int, channels: int, depth: int, norm: Norm | None = group_norm
) -> nn.Sequential:
    """``depth`` x (3x3 convolution, ``norm``, ReLU), flat in one ``nn.Sequential``.

    The trunk of a dense prediction head: FCOS's classification and regression towers (GroupNorm,
    depth 4), CenterNet's one-layer branches (no norm) before their 1x1 output convolution.
    """
    layers: list[nn.Module] = []
    for k in range(depth):
        layers += conv_norm_relu(in_channels if k == 0 else channels, channels, 3, norm=norm)
    return nn.Sequential(*layers)


def init_prior_bias(conv: nn.Conv2d, probability: float) -> nn.Conv2d:
    """Set ``conv``'s bias to ``-log((1 - p) / p)``: its sigmoid outputs start at ``p``.

    RetinaNet's initialisation (Lin et al. 2017, section 4.1): with a rare foreground, starting
    every location at a small probability keeps the many easy negatives from swamping the first
    steps of training. Returns ``conv``, changed in place.
    """
    nn.init.constant_(conv.bias, -math.log((1 - probability) / probability))
    return conv


def fit_size(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop (N, C, H, W) at the bottom/right, or extend it by its edge pixels, to ``size``.

    After pooling an odd size and upsampling back, a map is one row or column off its skip
    (ceil-mode pools: one too many, floor-mode pools: one too few).
    """
    h, w = size
    x = x[..., :h, :w]
    pad_h, pad_w = h - x.shape[-2], w - x.shape[-1]
    # An exported graph pads always (by 0 where nothing is missing): a branch taken on the
    # tracing sample's sizes would be frozen into the graph and be wrong at other sizes.
    if torch.compiler.is_exporting() or pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x
