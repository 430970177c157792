"""ResNet encoders (He et al., https://arxiv.org/abs/1512.03385) with torchvision's key names.

Parameters and buffers are named and shaped exactly as in torchvision's ``resnet*`` (``conv1``,
``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0`` ...), so torchvision checkpoints load
strictly (their ``fc`` is dropped). ``output_stride`` 16 or 8 replaces the stride of the last
stages by dilation, as DeepLab and torchvision's ``replace_stride_with_dilation`` do; unlike
torchvision, basic blocks (ResNet-18/34) accept dilation too.
"""

from __future__ import annotations

import torch
from torch import nn

from fcnlab.models.encoders.base import Encoder
from fcnlab.models.registry import ENCODERS

OUTPUT_STRIDES = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}


def conv3x3(inp: int, out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution that keeps the size at stride 1 whatever the dilation."""
    return nn.Conv2d(inp, out, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and an identity (or projected) shortcut."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, planes, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # In place, as torchvision: batch norm's backward does not need its output, and a fresh
        # sum is a large allocation per block (page faults on CPU).
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's "ResNet v1.5"), 1x1 expand by 4."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 4 * planes, H/stride, W/stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place: see BasicBlock
        return self.relu(out)


class ResNetEncoder(Encoder):
    """ResNet stem and four stages: features at reductions 2, 4, 8, 16, 32 (or dilated)."""

    classifier_prefixes = ("fc.",)

    def __init__(
        self, block: type[BasicBlock | Bottleneck], layers: list[int], output_stride: int = 32
    ) -> None:
        super().__init__()
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        self.inplanes, self.dilation = 64, 1
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        dilate = (False, *OUTPUT_STRIDES[output_stride])
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            self._make_layer(block, 64 * 2**i, n, 1 if i == 0 else 2, dilate[i])
            for i, n in enumerate(layers)
        )
        self.out_channels = [64] + [64 * 2**i * block.expansion for i in range(4)]
        self.reductions = [2, 4]
        for stage in range(3):
            self.reductions.append(self.reductions[-1] * (1 if dilate[stage + 1] else 2))
        self.output_stride = output_stride
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int,
        dilate: bool,
    ) -> nn.Sequential:
        # torchvision's rule: the first block of a dilated stage keeps the previous dilation.
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> [stem, layer1, layer2, layer3, layer4], shallow to deep."""
        stem = self.relu(self.bn1(self.conv1(x)))
        features = [stem]
        x = self.maxpool(stem)
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            features.append(x)
        return features


@ENCODERS.register("resnet18")
def resnet18(output_stride: int = 32) -> ResNetEncoder:
    """ResNet-18: basic blocks [2, 2, 2, 2]."""
    return ResNetEncoder(BasicBlock, [2, 2, 2, 2], output_stride)


@ENCODERS.register("resnet34")
def resnet34(output_stride: int = 32) -> ResNetEncoder:
    """ResNet-34: basic blocks [3, 4, 6, 3]."""
    return ResNetEncoder(BasicBlock, [3, 4, 6, 3], output_stride)


@ENCODERS.register("resnet50")
def resnet50(output_stride: int = 32) -> ResNetEncoder:
    """ResNet-50: bottlenecks [3, 4, 6, 3]."""
    return ResNetEncoder(Bottleneck, [3, 4, 6, 3], output_stride)


@ENCODERS.register("resnet101")
def resnet101(output_stride: int = 32) -> ResNetEncoder:
    """ResNet-101: bottlenecks [3, 4, 23, 3]."""
    return ResNetEncoder(Bottleneck, [3, 4, 23, 3], output_stride)
