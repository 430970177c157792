"""Necks: what sits between an encoder and the heads of a multi-scale model.

``FPN`` is the feature pyramid of Lin et al. (*Feature Pyramid Networks for Object Detection*,
https://arxiv.org/abs/1612.03144) as FCOS, CondInst and SOLOv2 build it: it takes an encoder's
features (with their ``out_channels`` and ``reductions``), picks those at the wanted strides and
returns one map of the same width per pyramid level, fine to coarse.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# C3, C4, C5: the encoder features the detectors' pyramids start from.
PYRAMID_STRIDES = (8, 16, 32)


def pick_features(reductions: Sequence[int], strides: Sequence[int]) -> list[int]:
    """Index of the deepest encoder feature at each of ``strides`` in ``reductions``.

    The deepest one, because an encoder may keep its resolution over several outputs (VGG's
    pool5 and fc7 are both at 32): the last has seen the most.
    """
    picked = []
    for stride in strides:
        matches = [i for i, reduction in enumerate(reductions) if reduction == stride]
        if not matches:
            raise ValueError(
                f"the feature pyramid needs encoder features at reductions {list(strides)}, but "
                f"the encoder's reductions are {list(reductions)}"
            )
        picked.append(matches[-1])
    return picked


class FPN(nn.Module):
    """Feature pyramid: top-down pathway with lateral connections, plus optional coarser levels.

    ``in_channels`` and ``reductions`` describe the encoder's features (shallow to deep);
    ``strides`` picks the ones the pyramid starts from (C3-C5 by default). Each picked feature
    gets a lateral 1x1 convolution to ``channels``; going top-down, the coarser sum is upsampled
    (nearest, to the lateral's exact size, so any input size works) and added; a 3x3 convolution
    smooths each sum into a P-level. ``extra`` coarser levels follow, each a stride-2 3x3
    convolution of the level before (P6 of P5, then P7 of ReLU(P6)), as in FCOS; RetinaNet's P6
    is taken from C5 instead. ``self.strides`` lists the output strides (8, 16, 32, 64, 128 by
    default); ``self.feature_index`` the encoder features used.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        reductions: Sequence[int],
        strides: Sequence[int] = PYRAMID_STRIDES,
        channels: int = 256,
        extra: int = 2,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(reductions):
            raise ValueError(
                f"the encoder's out_channels {list(in_channels)} and reductions "
                f"{list(reductions)} must have one entry per feature"
            )
        self.feature_index = pick_features(reductions, strides)
        self.strides = (*strides, *(strides[-1] * 2 ** (k + 1) for k in range(extra)))
        self.lateral = nn.ModuleList(
            nn.Conv2d(in_channels[i], channels, 1) for i in self.feature_index
        )
        self.output = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in self.feature_index
        )
        self.extra = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(extra)
        )
        self.out_channels = channels
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The encoder's features, shallow to deep -> [P3, ..., P7], fine to coarse.

        P3-P5 are (N, channels) at their features' sizes; each extra level halves the one before,
        rounding up.
        """
        picked = [features[i] for i in self.feature_index]
        x = self.lateral[-1](picked[-1])
        top_down = [x]
        for lateral, feature in zip(self.lateral[-2::-1], picked[-2::-1], strict=True):
            lat = lateral(feature)
            x = lat + F.interpolate(x, size=lat.shape[-2:], mode="nearest")
            top_down.insert(0, x)
        levels = [conv(p) for conv, p in zip(self.output, top_down, strict=True)]
        x = levels[-1]
        for k, conv in enumerate(self.extra):
            x = conv(F.relu(x) if k else x)
            levels.append(x)
        return levels
