"""What every encoder shares: feature metadata, channel scaling, classifier-key handling, and
the forward pass of an encoder that is a plain sequence of stages."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


def scale_channels(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1: the width multiplier of small variants."""
    if not width > 0:
        raise ValueError(f"width must be a positive multiplier, got {width!r}")
    return max(1, round(channels * width))


class Encoder(nn.Module):
    """Base class: ``forward(x)`` returns stage outputs shallow to deep.

    Subclasses set ``out_channels`` (channels of each output) and ``reductions`` (its stride
    relative to the input), and name in ``classifier_prefixes`` the keys of the classifier
    layers that a classifier checkpoint has and the encoder does not hold.
    """

    classifier_prefixes: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.out_channels: list[int] = []
        self.reductions: list[int] = []

    def adapt_state_dict(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` without the classifier layers; ``load_weights`` calls this first."""
        return {k: v for k, v in state.items() if not k.startswith(self.classifier_prefixes)}


class StagedEncoder(Encoder):
    """An encoder whose ``stages`` (an ``nn.ModuleList``) run in turn, each output a feature.

    DarkNet and U-Net's contracting path are built this way; VGG (features at its pools) and
    ResNet (the stem before the max pool) define their own ``forward``.
    """

    stages: nn.ModuleList

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, C, H, W) -> the output of every stage, shallow to deep."""
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features
