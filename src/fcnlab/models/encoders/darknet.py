"""DarkNet encoders: DarkNet-19 (YOLO9000, https://arxiv.org/abs/1612.08242, Table 6) and
DarkNet-53 (YOLOv3, https://arxiv.org/abs/1804.02767, Table 1), with the Darknet weights reader.

Every convolution is followed by batch norm and LeakyReLU(0.1), as in the papers. Modules are
registered in the order of the Darknet ``.cfg`` files, so ``load_darknet_weights`` can read the
original binary files (``darknet19.weights`` without its classifier, ``darknet53.conv.74``).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fcnlab.models.encoders.base import StagedEncoder, scale_channels
from fcnlab.models.registry import ENCODERS

# DarkNet-19 stages: the convolutions (filters, size) at strides 2, 4, 8, 16, 32. Each stage
# starts with a 2x2 max pool; the first also starts with the 32-filter stride-1 convolution.
DARKNET19 = (
    ((64, 3),),
    ((128, 3), (64, 1), (128, 3)),
    ((256, 3), (128, 1), (256, 3)),
    ((512, 3), (256, 1), (512, 3), (256, 1), (512, 3)),
    ((1024, 3), (512, 1), (1024, 3), (512, 1), (1024, 3)),
)
# DarkNet-53 stages: output filters and number of residual blocks after the stride-2 conv.
DARKNET53 = ((64, 1), (128, 2), (256, 8), (512, 8), (1024, 4))
STEM_FILTERS = 32


class ConvBNLeaky(nn.Module):
    """Darknet's ``[convolutional]`` with ``batch_normalize=1``: conv, BN, LeakyReLU(0.1)."""

    def __init__(self, inp: int, out: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inp, out, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, inp, H, W) -> (N, out, H/stride, W/stride)."""
        return self.act(self.bn(self.conv(x)))


class Residual(nn.Module):
    """DarkNet-53's block: 1x1 halving the channels, 3x3 restoring them, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = ConvBNLeaky(channels, channels // 2, 1)
        self.expand = ConvBNLeaky(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        return x + self.expand(self.reduce(x))


class DarkNetEncoder(StagedEncoder):
    """A stack of stages; the output of each is a feature (reductions 2, 4, 8, 16, 32)."""

    def __init__(self, stages: list[nn.Sequential], out_channels: list[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.out_channels = out_channels
        self.reductions = [2 ** (i + 1) for i in range(len(stages))]


@ENCODERS.register("darknet19")
def darknet19(width: float = 1.0) -> DarkNetEncoder:
    """DarkNet-19 without its classifier (the 1000-filter 1x1 convolution)."""
    channels = scale_channels(STEM_FILTERS, width)
    stages, outs = [], []
    for i, convs in enumerate(DARKNET19):
        layers: list[nn.Module] = [ConvBNLeaky(3, channels, 3)] if i == 0 else []
        layers.append(nn.MaxPool2d(2, 2))
        for filters, size in convs:
            out = scale_channels(filters, width)
            layers.append(ConvBNLeaky(channels, out, size))
            channels = out
        stages.append(nn.Sequential(*layers))
        outs.append(channels)
    return DarkNetEncoder(stages, outs)


@ENCODERS.register("darknet53")
def darknet53(width: float = 1.0) -> DarkNetEncoder:
    """DarkNet-53 without its classifier: the 52 convolutions of ``darknet53.conv.74``."""
    channels = scale_channels(STEM_FILTERS, width)
    stages, outs = [], []
    for i, (filters, blocks) in enumerate(DARKNET53):
        out = scale_channels(filters, width)
        layers: list[nn.Module] = [ConvBNLeaky(3, channels, 3)] if i == 0 else []
        layers.append(ConvBNLeaky(channels, out, 3, stride=2))
        layers += [Residual(out) for _ in range(blocks)]
        stages.append(nn.Sequential(*layers))
        outs.append(out)
        channels = out
    return DarkNetEncoder(stages, outs)


def darknet_layers(module: nn.Module) -> list[tuple[nn.Module, nn.BatchNorm2d | None]]:
    """The layers a Darknet file stores, in order: each convolution with its batch norm (the
    BatchNorm2d registered right after it, if any) and each fully connected layer."""
    modules = list(module.modules())
    layers: list[tuple[nn.Module, nn.BatchNorm2d | None]] = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.Conv2d):
            nxt = modules[i + 1] if i + 1 < len(modules) else None
            bn = nxt if isinstance(nxt, nn.BatchNorm2d) else None
            layers.append((m, bn))
        elif isinstance(m, nn.Linear):
            layers.append((m, None))
    return layers


def _layer_tensors(layer: nn.Module, bn: nn.BatchNorm2d | None) -> list[torch.Tensor]:
    # Darknet's order: BN beta, gamma, mean, variance (or the conv bias), then the weights.
    if bn is not None:
        first = [bn.bias, bn.weight, bn.running_mean, bn.running_var]
    elif layer.bias is not None:
        first = [layer.bias]
    else:
        raise ValueError(f"{layer} has neither batch norm nor a bias, which Darknet cannot store")
    return [*first, layer.weight]


def read_darknet_header(data: bytes, source: str) -> tuple[tuple[int, int, int, int], int]:
    """((major, minor, revision, seen), header size in bytes) of a Darknet ``.weights`` file.

    ``seen`` (images seen in training) is an int64 from format 0.2 on and an int32 before.
    """
    if len(data) < 12:
        raise ValueError(f"{source} has {len(data)} bytes, too short for a Darknet header")
    major, minor, revision = struct.unpack("<3i", data[:12])
    wide = major * 10 + minor >= 2 and major < 1000
    size = 20 if wide else 16
    if len(data) < size:
        raise ValueError(f"{source} has {len(data)} bytes, too short for a Darknet header")
    (seen,) = struct.unpack("<q" if wide else "<i", data[12:size])
    return (major, minor, revision, seen), size


def load_darknet_weights(module: nn.Module, path: str | os.PathLike[str]) -> tuple[int, ...]:
    """Load an original Darknet binary ``.weights`` file into ``module``; returns its header.

    For every convolution (in registration order): the batch norm's biases, scales, running
    means and variances, or the conv bias without batch norm; then the weights as (out, in,
    kh, kw); all little-endian float32. The file must hold exactly as many floats as the
    module needs.
    """
    path = Path(path)
    data = path.read_bytes()
    header, offset = read_darknet_header(data, f"'{path}'")
    tail = len(data) - offset
    layers = darknet_layers(module)
    tensors = [t for layer, bn in layers for t in _layer_tensors(layer, bn)]
    expected = sum(t.numel() for t in tensors)
    if tail % 4 or tail // 4 != expected:
        raise ValueError(
            f"'{path}' holds {tail / 4:g} floats after its {offset}-byte header but "
            f"{type(module).__name__} ({len(layers)} layers) expects {expected}"
        )
    values = torch.from_numpy(np.frombuffer(data, dtype="<f4", offset=offset).astype(np.float32))
    start = 0
    with torch.no_grad():
        for t in tensors:
            t.copy_(values[start : start + t.numel()].view_as(t))
            start += t.numel()
    return header
