"""SegNet (Badrinarayanan, Kendall & Cipolla, https://arxiv.org/abs/1511.00561).

A VGG16-bn encoder whose max pools return the position of each maximum, and a decoder that
mirrors it: each stage upsamples with ``nn.MaxUnpool2d`` at those positions (a sparse map, the
encoder's "where" without its "what"), then densifies it with the stage's convolutions in reverse
order. The unpooling code here also serves DeconvNet (``fcnlab.models.segmentation.deconvnet``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.blocks import ConvLayer, conv_bn_relu
from fcnlab.models.registry import MODELS, make_encoder
from fcnlab.models.weights import WeightsSource
from fcnlab.nn import MaxUnpool2d


class Pooled(NamedTuple):
    """One max pool's output, the flat index of each maximum and the size of the pool's input."""

    features: torch.Tensor
    indices: torch.Tensor
    size: torch.Size


class Stage(NamedTuple):
    """The convolutions of one VGG stage and the max pool that ends it."""

    convs: list[nn.Conv2d]
    pool: nn.MaxPool2d


def vgg_stages(encoder: nn.Module) -> list[Stage]:
    """Split ``encoder.features`` (torchvision's VGG layout) into stages ending with a max pool.

    Raises a ValueError for an encoder without such ``features`` or with a convolution that does
    not keep the size (e.g. the classic FCN's conv1_1 padded by 100): the mirrored decoder can
    only restore sizes that max pooling changed.
    """
    features = getattr(encoder, "features", None)
    name = type(encoder).__name__
    if not isinstance(features, nn.Sequential):
        raise ValueError(
            f"{name} has no 'features' nn.Sequential; unpooling decoders need a VGG-style "
            "encoder (e.g. 'vgg16_bn') whose max pools can return indices"
        )
    stages: list[Stage] = []
    convs: list[nn.Conv2d] = []
    for index, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d):
            stages.append(Stage(convs, layer))
            convs = []
        elif isinstance(layer, nn.Conv2d):
            k, pad = layer.kernel_size, layer.padding
            if layer.stride != (1, 1) or pad != (k[0] // 2, k[1] // 2):
                raise ValueError(
                    f"{name}.features[{index}] is {layer}; unpooling decoders need stride-1 "
                    "convolutions padded by kernel_size // 2 (size-preserving)"
                )
            convs.append(layer)
    if convs or not stages:
        raise ValueError(
            f"{name}.features must be stages of convolutions each ending with nn.MaxPool2d; "
            f"found {len(stages)} pools and {len(convs)} convolutions after the last one"
        )
    return stages


def encode_with_indices(encoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[Pooled]]:
    """Run a VGG-style encoder keeping every max pool's indices: (top, [pool1, ..., poolK]).

    Pools run in ceil mode, as Caffe's did in the original SegNet and DeconvNet, so no row or
    column of an odd-sized map is dropped and any input size works. ``top`` is the deepest
    output: poolK, or fc7 when the encoder has an ``fc`` block (DeconvNet's bottleneck).
    """
    pooled: list[Pooled] = []
    for layer in encoder.features:
        if isinstance(layer, nn.MaxPool2d):
            size = x.shape[-2:]
            x, indices = F.max_pool2d(
                x,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                layer.dilation,
                ceil_mode=True,
                return_indices=True,
            )
            pooled.append(Pooled(x, indices, size))
        else:
            x = layer(x)
    fc = getattr(encoder, "fc", None)
    return (x if fc is None else fc(x)), pooled


class UnpoolingDecoder(nn.Module):
    """The encoder mirrored: per stage, deep to shallow, unpool then the convolutions reversed.

    A mirrored layer maps the encoder layer's output channels back to its input channels. The
    image-facing layer (conv1_1, 3 channels out of the mirror) is left to the model: SegNet's
    classifier takes its place (``keep_first=False``); DeconvNet keeps it with 64 channels out
    (``keep_first=True``). ``bottleneck`` runs on the encoder's top output first.
    """

    def __init__(
        self,
        stages: list[Stage],
        conv: ConvLayer = nn.Conv2d,
        keep_first: bool = False,
        bottleneck: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.bottleneck = bottleneck if bottleneck is not None else nn.Identity()
        self.unpools = nn.ModuleList()
        self.stages = nn.ModuleList()
        for depth, stage in reversed(list(enumerate(stages))):
            pool = stage.pool
            self.unpools.append(MaxUnpool2d(pool.kernel_size, pool.stride, pool.padding))
            layers = []
            for position, layer in reversed(list(enumerate(stage.convs))):
                k = layer.kernel_size[0]
                if depth == 0 and position == 0:
                    if keep_first:
                        layers.append(conv_bn_relu(layer.out_channels, layer.out_channels, k, conv))
                    continue
                layers.append(conv_bn_relu(layer.out_channels, layer.in_channels, k, conv))
            self.stages.append(nn.Sequential(*layers))
        self.out_channels = stages[0].convs[0].out_channels

    def forward(self, top: torch.Tensor, pooled: list[Pooled]) -> torch.Tensor:
        """(top, [pool1..poolK]) -> (N, out_channels, H, W) at the input's size."""
        x = self.bottleneck(top)
        for unpool, stage, p in zip(self.unpools, self.stages, reversed(pooled), strict=True):
            x = stage(unpool(x, p.indices, output_size=p.size))
        return x


class SegNet(nn.Module):
    """Encoder with pooling indices -> unpooling decoder -> classifier; logits at input size."""

    def __init__(self, encoder: nn.Module, decoder: UnpoolingDecoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> logits (N, num_classes, H, W)."""
        top, pooled = encode_with_indices(self.encoder, x)
        return self.head(self.decoder(top, pooled))


@MODELS.register("segnet")
def segnet(
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
) -> SegNet:
    """SegNet with a VGG16-bn encoder (29.4M parameters for 12 classes, as published).

    The decoder mirrors every encoder convolution but conv1_1, whose place a 3x3 classifier
    takes (the paper's conv1_1_D before the softmax). Differences from the paper: torchvision's
    VGG layout and initialisation; any VGG-style encoder works (``encoder="vgg16"``,
    ``encoder_options={"width": 0.25}``).
    """
    built = make_encoder(encoder, "vgg16_bn", encoder_weights, encoder_options)
    if getattr(built, "fc", None) is not None:
        raise ValueError(
            f"SegNet has no fc6/fc7 bottleneck, but its {type(built).__name__} encoder has an "
            "'fc' block; build the encoder without fc=True (DeconvNet is SegNet with one)"
        )
    stages = vgg_stages(built)
    decoder = UnpoolingDecoder(stages, nn.Conv2d, keep_first=False)
    first = stages[0].convs[0]
    head = nn.Conv2d(decoder.out_channels, num_classes, first.kernel_size, padding=first.padding)
    return SegNet(built, decoder, head)
