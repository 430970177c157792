"""VGG encoders (Simonyan & Zisserman, https://arxiv.org/abs/1409.1556) in torchvision's layout.

``features`` is torchvision's ``nn.Sequential`` (keys ``features.0.weight`` ...), so torchvision
checkpoints load strictly. With ``fc=True`` the encoder also holds fc6 and fc7 as convolutions
(``fc.0``: k x k, ``fc.3``: 1x1), the "convolutionalized" classifier of FCN: torchvision's
``classifier.0``/``classifier.3`` Linear weights load into them reshaped.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from fcnlab.models.encoders.base import Encoder, scale_channels
from fcnlab.models.registry import ENCODERS

POOL = "M"
VGG16 = (
    64,
    64,
    POOL,
    128,
    128,
    POOL,
    256,
    256,
    256,
    POOL,
    512,
    512,
    512,
    POOL,
    512,
    512,
    512,
    POOL,
)
FC_WIDTH = 4096
# fc6/fc7 Linear layers of torchvision's classifier and the fc convolutions that take them.
FC_KEYS = (("classifier.0", "fc.0"), ("classifier.3", "fc.3"))
CLASSIFIER_OUTPUT = "classifier.6."
# The reference FCN pads conv1_1 by 100 so that any input of at least 1 pixel survives fc6.
CLASSIC_PADDING = 100


def make_vgg_features(
    config: tuple[int | str, ...], batch_norm: bool, width: float = 1.0, classic: bool = False
) -> nn.Sequential:
    """torchvision's ``features``: 3x3 convs (+BN) + ReLU, 2x2 max pools where ``config`` says M.

    ``classic`` gives the Caffe FCN variant: conv1_1 padded by 100 and pools in ceil mode.
    """
    layers: list[nn.Module] = []
    channels = 3
    for item in config:
        if item == POOL:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=classic))
            continue
        out = scale_channels(int(item), width)
        padding = CLASSIC_PADDING if classic and not layers else 1
        layers.append(nn.Conv2d(channels, out, kernel_size=3, padding=padding))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        channels = out
    return nn.Sequential(*layers)


def init_vgg(module: nn.Module) -> None:
    """torchvision's VGG initialisation: Kaiming convs, N(0, 0.01) fully connected layers."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


class VGGEncoder(Encoder):
    """VGG features: pool1..pool5 outputs (reductions 2..32), then fc7's output if ``fc``.

    ``width`` scales every channel count (fc layers included) for small CPU variants.
    ``fc6_kernel`` is fc6's size (7 for the ImageNet classifier on 224x224 inputs); fc6 is
    padded by ``fc6_kernel // 2`` so fc7 stays on pool5's grid, except in ``classic`` mode
    where, as in the reference FCN, it is unpadded; ``fc6_padding`` overrides both (0 makes a
    224x224 image give a 1x1 output, as the classifier does).
    """

    def __init__(
        self,
        config: tuple[int | str, ...] = VGG16,
        batch_norm: bool = False,
        width: float = 1.0,
        fc: bool = False,
        fc6_kernel: int = 7,
        classic: bool = False,
        fc6_padding: int | None = None,
    ) -> None:
        super().__init__()
        self.features = make_vgg_features(config, batch_norm, width, classic)
        convs = [int(c) for c in config if c != POOL]
        pools = [i for i, c in enumerate(config) if c == POOL]
        self.out_channels = [scale_channels(int(config[i - 1]), width) for i in pools]
        self.reductions = [2 ** (k + 1) for k in range(len(pools))]
        self.fc6_kernel, self.classic = fc6_kernel, classic
        self.fc_width = scale_channels(FC_WIDTH, width)
        self.fc: nn.Sequential | None = None
        if fc:
            if fc6_padding is None:
                if not classic and fc6_kernel % 2 == 0:
                    raise ValueError(
                        f"fc6_kernel must be odd to keep pool5's grid, got {fc6_kernel}"
                    )
                fc6_padding = 0 if classic else fc6_kernel // 2
            c, h = scale_channels(convs[-1], width), self.fc_width
            self.fc = nn.Sequential(
                nn.Conv2d(c, h, fc6_kernel, padding=fc6_padding),
                nn.ReLU(inplace=True),
                nn.Dropout(),
                nn.Conv2d(h, h, 1),
                nn.ReLU(inplace=True),
                nn.Dropout(),
            )
            self.out_channels.append(h)
            self.reductions.append(self.reductions[-1])
        self.classifier_prefixes = (CLASSIFIER_OUTPUT,) if fc else ("classifier.",)
        init_vgg(self)
        if self.fc is not None:
            for conv in (self.fc[0], self.fc[3]):
                nn.init.normal_(conv.weight, 0, 0.01)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) -> [pool1, ..., pool5(, fc7)], shallow to deep."""
        features = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                features.append(x)
        if self.fc is not None:
            features.append(self.fc(x))
        return features

    def adapt_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Drop torchvision's classifier, or with ``fc`` reshape its fc6/fc7 into convolutions."""
        state = super().adapt_state_dict(state)
        if self.fc is None:
            return state
        own = self.state_dict()
        for linear, conv in FC_KEYS:
            for name in ("weight", "bias"):
                tensor = state.pop(f"{linear}.{name}", None)
                if tensor is None:
                    continue
                target = own[f"{conv}.{name}"].shape
                # A size that cannot be reshaped is left as is: the strict check reports it.
                state[f"{conv}.{name}"] = (
                    tensor.reshape(target) if tensor.numel() == target.numel() else tensor
                )
        return state


@ENCODERS.register("vgg16")
def vgg16(
    width: float = 1.0,
    fc: bool = False,
    fc6_kernel: int = 7,
    classic: bool = False,
    fc6_padding: int | None = None,
) -> VGGEncoder:
    """VGG-16 (configuration D) without batch norm, torchvision's ``vgg16`` keys."""
    return VGGEncoder(VGG16, False, width, fc, fc6_kernel, classic, fc6_padding)


@ENCODERS.register("vgg16_bn")
def vgg16_bn(
    width: float = 1.0,
    fc: bool = False,
    fc6_kernel: int = 7,
    classic: bool = False,
    fc6_padding: int | None = None,
) -> VGGEncoder:
    """VGG-16 with batch norm after every convolution, torchvision's ``vgg16_bn`` keys."""
    return VGGEncoder(VGG16, True, width, fc, fc6_kernel, classic, fc6_padding)
