"""DeconvNet (Noh, Hong & Han, https://arxiv.org/abs/1505.04366).

SegNet's idea with VGG16's fully connected layers kept as a bottleneck: conv1..conv5 with
pooling indices, fc6 (7x7) and fc7 (1x1) as convolutions, then "deconv-fc6" (a 7x7 transpose
convolution back to pool5's channels) and a decoder that mirrors the encoder with unpooling and
3x3 transpose convolutions, each followed by batch norm and ReLU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from fcnlab.models.registry import MODELS, make_encoder
from fcnlab.models.segmentation.segnet import SegNet, UnpoolingDecoder, vgg_stages
from fcnlab.models.weights import WeightsSource


class DeconvNet(SegNet):
    """Encoder (with fc6/fc7) -> deconv-fc6 and unpooling decoder -> 1x1 classifier."""


@MODELS.register("deconvnet")
def deconvnet(
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
) -> DeconvNet:
    """DeconvNet on VGG16-bn with fc6/fc7 (252M parameters for 21 classes, as published).

    fc6/fc7 belong to the encoder (``fc=True``; an ImageNet classifier checkpoint fills them),
    so they freeze with it. Differences from the paper: fc6 is padded (``fc6_kernel // 2``) and
    deconv-fc6 mirrors that padding, so that inputs smaller than 224x224 work and the bottleneck
    keeps pool5's grid instead of collapsing it to 1x1; fc6/fc7 carry dropout and no batch norm
    (torchvision's classifier); the decoder uses batch norm after every transpose convolution.
    """
    options = dict(encoder_options or {})
    if not isinstance(encoder, nn.Module):
        options = {"fc": True, **options}
    built = make_encoder(encoder, "vgg16_bn", encoder_weights, options)
    fc = getattr(built, "fc", None)
    if not isinstance(fc, nn.Sequential) or not isinstance(fc[0], nn.Conv2d):
        raise ValueError(
            f"DeconvNet needs an encoder with an 'fc' block (fc6, fc7 as convolutions); "
            f"its {type(built).__name__} has none: build it with fc=True"
        )
    stages = vgg_stages(built)
    fc6 = fc[0]
    deconv_fc6 = nn.Sequential(
        nn.ConvTranspose2d(fc6.out_channels, fc6.in_channels, fc6.kernel_size, padding=fc6.padding),
        nn.BatchNorm2d(fc6.in_channels),
        nn.ReLU(inplace=True),
    )
    decoder = UnpoolingDecoder(stages, nn.ConvTranspose2d, keep_first=True, bottleneck=deconv_fc6)
    return DeconvNet(built, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1))
