"""Image classifiers in torchvision's layout, and their "convolutionalized" versions.

Long, Shelhamer & Darrell (https://arxiv.org/abs/1411.4038, section 3.1): a classifier's fully
connected layers are convolutions whose kernels cover their whole input. VGG16's fc6 (25088 ->
4096) is a 7x7 convolution 512 -> 4096, fc7 and fc8 are 1x1 convolutions; a ResNet's ``fc`` is a
1x1 convolution that commutes with the global average. On the training size (224x224) the
convolutional network gives the classifier's logits; on larger images, a coarse heat map of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fcnlab.models.encoders.base import Encoder, scale_channels
from fcnlab.models.encoders.resnet import BasicBlock, Bottleneck, ResNetEncoder
from fcnlab.models.encoders.vgg import FC_WIDTH, VGG16, init_vgg, make_vgg_features
from fcnlab.models.registry import build_encoder, encoder_accepts
from fcnlab.models.weights import WeightsSource, load_weights
from fcnlab.registry import Registry

CLASSIFIERS: Registry[nn.Module] = Registry("classifier")


class VGGClassifier(nn.Module):
    """torchvision's ``VGG``: ``features``, ``avgpool`` to k x k, ``classifier`` (3 Linear).

    ``width`` scales all channels and the fc width (4096); ``fc6_kernel`` is the pooled size k
    (7 in torchvision; 1 suits small images, e.g. 32x32 whose pool5 is 1x1).
    """

    def __init__(
        self,
        batch_norm: bool = False,
        num_classes: int = 1000,
        width: float = 1.0,
        fc6_kernel: int = 7,
    ) -> None:
        super().__init__()
        self.features = make_vgg_features(VGG16, batch_norm, width)
        self.avgpool = nn.AdaptiveAvgPool2d((fc6_kernel, fc6_kernel))
        channels, hidden = scale_channels(512, width), scale_channels(FC_WIDTH, width)
        self.classifier = nn.Sequential(
            nn.Linear(channels * fc6_kernel**2, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )
        init_vgg(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> logits (N, num_classes)."""
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class ResNetClassifier(ResNetEncoder):
    """torchvision's ``ResNet``: the encoder's layers, global average pooling and ``fc``."""

    classifier_prefixes = ()

    def __init__(
        self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000
    ) -> None:
        super().__init__(block, layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """(N, 3, H, W) -> logits (N, num_classes)."""
        return self.fc(torch.flatten(self.avgpool(super().forward(x)[-1]), 1))


@CLASSIFIERS.register("vgg16")
def vgg16_classifier(
    num_classes: int = 1000, width: float = 1.0, fc6_kernel: int = 7
) -> VGGClassifier:
    """VGG-16 classifier, torchvision's ``vgg16`` (138,357,544 parameters at width 1)."""
    return VGGClassifier(False, num_classes, width, fc6_kernel)


@CLASSIFIERS.register("vgg16_bn")
def vgg16_bn_classifier(
    num_classes: int = 1000, width: float = 1.0, fc6_kernel: int = 7
) -> VGGClassifier:
    """VGG-16 classifier with batch norm, torchvision's ``vgg16_bn``."""
    return VGGClassifier(True, num_classes, width, fc6_kernel)


@CLASSIFIERS.register("resnet18")
def resnet18_classifier(num_classes: int = 1000) -> ResNetClassifier:
    """ResNet-18 classifier, torchvision's ``resnet18`` (11,689,512 parameters)."""
    return ResNetClassifier(BasicBlock, [2, 2, 2, 2], num_classes)


@CLASSIFIERS.register("resnet34")
def resnet34_classifier(num_classes: int = 1000) -> ResNetClassifier:
    """ResNet-34 classifier, torchvision's ``resnet34``."""
    return ResNetClassifier(BasicBlock, [3, 4, 6, 3], num_classes)


@CLASSIFIERS.register("resnet50")
def resnet50_classifier(num_classes: int = 1000) -> ResNetClassifier:
    """ResNet-50 classifier, torchvision's ``resnet50`` (25,557,032 parameters)."""
    return ResNetClassifier(Bottleneck, [3, 4, 6, 3], num_classes)


@CLASSIFIERS.register("resnet101")
def resnet101_classifier(num_classes: int = 1000) -> ResNetClassifier:
    """ResNet-101 classifier, torchvision's ``resnet101``."""
    return ResNetClassifier(Bottleneck, [3, 4, 23, 3], num_classes)


def list_classifiers() -> list[str]:
    """Names accepted by ``build_classifier``, sorted."""
    return CLASSIFIERS.names()


def build_classifier(
    name: str, num_classes: int = 1000, weights: WeightsSource | None = None, **options: Any
) -> nn.Module:
    """Build classifier ``name`` (torchvision's layout) and load ``weights`` strictly."""
    model = CLASSIFIERS.build(name, num_classes, **options)
    if weights is not None:
        load_weights(model, weights)
    return model


class ConvolutionalClassifier(nn.Module):
    """A classifier as a fully convolutional network: ``encoder`` then a 1x1 ``score``.

    ``forward`` returns the class-score map (N, K, h, w). For VGG the encoder ends with fc6/fc7
    as convolutions and a 224x224 image gives h = w = 1, the classifier's logits; for ResNet
    (and DarkNet) the logits are the map's mean over (h, w), because a 1x1 convolution commutes
    with the global average.
    """

    def __init__(self, encoder: Encoder, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.score = nn.Conv2d(encoder.out_channels[-1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> class scores (N, num_classes, h, w)."""
        return self.score(self.encoder(x)[-1])

    def adapt_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Map a torchvision classifier's state dict onto this module (own keys pass as is).

        The last Linear layer (``classifier.6`` for VGG, ``fc`` for ResNet) becomes ``score``,
        reshaped to 1x1; everything else goes through the encoder's own conversion.
        """
        if any(k.startswith(("encoder.", "score.")) for k in state):
            return dict(state)
        head = self.encoder.classifier_prefixes
        adapted = {
            f"encoder.{k}": v
            for k, v in self.encoder.adapt_state_dict(state).items()  # type: ignore[operator]
        }
        for key, value in state.items():
            if head and key.startswith(head):
                name = key.rsplit(".", 1)[1]
                shape = self.score.weight.shape if name == "weight" else value.shape
                fits = value.numel() == shape.numel()
                adapted[f"score.{name}"] = value.reshape(shape) if fits else value
        return adapted


def classifier_as_fcn(
    name: str, weights: WeightsSource | None = None, num_classes: int = 1000, **options: Any
) -> ConvolutionalClassifier:
    """The classifier ``name`` convolutionalized; ``weights`` in torchvision's classifier layout.

    For VGG, fc6 is an unpadded ``fc6_kernel`` x ``fc6_kernel`` convolution (7x7 by default) so
    that 224x224 gives (N, num_classes, 1, 1); larger images give a heat map of size
    (H/32 - 6, W/32 - 6). ``options`` (e.g. ``width``) go to the encoder.
    """
    if encoder_accepts(name, "fc"):
        options = {"fc": True, "fc6_padding": 0, **options}
    model = ConvolutionalClassifier(build_encoder(name, **options), num_classes)
    if weights is not None:
        load_weights(model, weights)
    return model
