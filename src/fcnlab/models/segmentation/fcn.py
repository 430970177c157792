"""FCN-32s, FCN-16s and FCN-8s (Long, Shelhamer & Darrell, CVPR 2015,
https://arxiv.org/abs/1411.4038; the reference Caffe nets are in shelhamer/fcn.berkeleyvision.org).

Class scores (1x1 "score" convolutions, initialised to zero) are computed on the deepest
features, upsampled by learned transpose convolutions initialised to bilinear interpolation,
and, for 16s and 8s, fused by addition with scores from pool4 (stride 16) and pool3 (stride 8).

The encoder is VGG16 by default and then includes fc6 and fc7 as convolutions: they come from the
ImageNet classifier, so they belong to the pretrained part that the freeze API fixes; the score
layers and the upsampling are the decoder. Any registered encoder works: the skips are taken from
its last features at strides 16 and 8 before the deepest.

Default mode: the input is zero-padded at the bottom and right to a multiple of the deepest
stride, so every feature map is exactly 1/stride of it and maps align without cropping; the
output is cropped back to (H, W). ``classic=True`` reproduces the reference nets instead: conv1_1
padded by 100, ceil-mode pooling, unpadded 7x7 fc6, plain transpose convolutions and Caffe's crop
offsets, so converted reference weights run unchanged. ``at_once=True`` adds the fixed scaling of
pool4 by 0.01 and pool3 by 0.0001 of the "at-once" FCN-8s (it trains all skips together).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.registry import MODELS, encoder_accepts, make_encoder
from fcnlab.models.weights import WeightsSource
from fcnlab.nn import LearnedUpsample
from fcnlab.ops import bilinear_kernel

DEFAULT_ENCODER = "vgg16"
# Crop offsets of the reference nets: skip scores by skip stride, final output by final stride.
CLASSIC_SKIP_OFFSETS = {16: 5, 8: 9}
CLASSIC_FINAL_OFFSETS = {32: 19, 16: 27, 8: 31}
AT_ONCE_SCALES = {16: 0.01, 8: 0.0001}


def crop(x: torch.Tensor, offset: int, size: Sequence[int]) -> torch.Tensor:
    """``x[..., o:o+h, o:o+w]``: Caffe's Crop layer with the same offset on both axes."""
    h, w = size
    if offset + h > x.shape[-2] or offset + w > x.shape[-1]:
        raise ValueError(
            f"cannot crop {h}x{w} at offset {offset} from a {x.shape[-2]}x{x.shape[-1]} map"
        )
    return x[..., offset : offset + h, offset : offset + w]


def zero_score(in_channels: int, num_classes: int) -> nn.Conv2d:
    """A 1x1 score convolution initialised to zero, as in the reference FCN."""
    conv = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def classic_upsample(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Caffe's bias-free 2f x 2f, stride-f deconvolution with the bilinear kernel per channel."""
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, factor, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        kernel = bilinear_kernel(factor, dtype=layer.weight.dtype)
        for c in range(channels):
            layer.weight[c, c] = kernel
    return layer


def skip_index(reductions: Sequence[int], stride: int) -> int:
    """Index of the last feature at ``stride`` before the deepest (pool4 for 16, pool3 for 8)."""
    candidates = [i for i, r in enumerate(reductions[:-1]) if r == stride]
    if not candidates:
        raise ValueError(
            f"FCN needs a feature at stride {stride} before the deepest one; the encoder's "
            f"reductions are {list(reductions)}"
        )
    return candidates[-1]


class FCNDecoder(nn.Module):
    """Score the deepest features, then per skip: upsample x(stride ratio), add scored skip."""

    def __init__(
        self,
        in_channels: Sequence[int],
        reductions: Sequence[int],
        num_classes: int,
        skip_strides: Sequence[int],
        classic: bool = False,
        at_once: bool = False,
    ) -> None:
        super().__init__()
        strides = [reductions[-1], *skip_strides]
        if any(a < b for a, b in itertools.pairwise(strides)):
            raise ValueError(
                f"FCN fuses skips at strides {list(skip_strides)} but the encoder's deepest "
                f"feature is at stride {reductions[-1]} (reductions {list(reductions)})"
            )
        self.skip_indices = [skip_index(reductions, s) for s in skip_strides]
        self.score = zero_score(in_channels[-1], num_classes)
        self.skip_scores = nn.ModuleList(
            zero_score(in_channels[i], num_classes) for i in self.skip_indices
        )
        make = classic_upsample if classic else self._learned
        self.upsamples = nn.ModuleList(
            make(num_classes, a // b) for a, b in itertools.pairwise(strides)
        )
        self.final_upsample = make(num_classes, strides[-1])
        self.skip_scales = [AT_ONCE_SCALES[s] if at_once else 1.0 for s in skip_strides]
        self.classic = classic
        self.skip_offsets = [CLASSIC_SKIP_OFFSETS[s] if classic else 0 for s in skip_strides]
        self.final_offset = CLASSIC_FINAL_OFFSETS[strides[-1]] if classic else 0
        self.output_stride = strides[-1]

    @staticmethod
    def _learned(channels: int, factor: int) -> nn.Module:
        if factor == 1:
            return nn.Identity()
        return LearnedUpsample(channels, channels, factor, init="bilinear", bias=False)

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Features shallow to deep -> logits (N, K, H, W) with (H, W) = ``size``."""
        score = self.score(features[-1])
        parts = zip(
            self.skip_indices,
            self.skip_scores,
            self.upsamples,
            self.skip_scales,
            self.skip_offsets,
            strict=True,
        )
        for index, skip_score, upsample, scale, offset in parts:
            score = upsample(score)
            skip = skip_score(features[index] * scale if scale != 1.0 else features[index])
            score = score + crop(skip, offset, score.shape[-2:])
        return crop(self.final_upsample(score), self.final_offset, size)


class FCN(nn.Module):
    """``features = encoder(x)``; ``logits = decoder(features)`` at the input's size."""

    def __init__(self, encoder: nn.Module, decoder: FCNDecoder) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> logits (N, num_classes, H, W)."""
        size = x.shape[-2:]
        if not self.decoder.classic:
            multiple = max(self.encoder.reductions)
            x = F.pad(x, (0, -x.shape[-1] % multiple, 0, -x.shape[-2] % multiple))
        return self.decoder(self.encoder(x), size)


def build_fcn(
    skip_strides: Sequence[int],
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    classic: bool = False,
    at_once: bool = False,
) -> FCN:
    """An FCN fusing skips at ``skip_strides``; VGG encoders get fc6/fc7 (``fc=True``)."""
    options = dict(encoder_options or {})
    if isinstance(encoder, nn.Module):
        module = make_encoder(encoder, DEFAULT_ENCODER, encoder_weights, options)
    else:
        name = encoder or DEFAULT_ENCODER
        if encoder_accepts(name, "fc"):
            options.setdefault("fc", True)
        if classic:
            if not encoder_accepts(name, "classic"):
                raise ValueError(
                    f"classic=True reproduces the reference VGG16 nets; encoder {name!r} "
                    "has no classic form"
                )
            options["classic"] = True
        module = make_encoder(name, DEFAULT_ENCODER, encoder_weights, options)
    if classic and not (getattr(module, "classic", False) and getattr(module, "fc", None)):
        raise ValueError(
            "classic=True needs a VGG encoder built with classic=True and fc=True "
            "(conv1_1 padded by 100, ceil-mode pooling, fc6/fc7)"
        )
    decoder = FCNDecoder(
        module.out_channels, module.reductions, num_classes, skip_strides, classic, at_once
    )
    return FCN(module, decoder)


@MODELS.register("fcn32s")
def fcn32s(num_classes: int, **options: Any) -> FCN:
    """FCN-32s: scores of the deepest features upsampled x32 in one step."""
    return build_fcn((), num_classes, **options)


@MODELS.register("fcn16s")
def fcn16s(num_classes: int, **options: Any) -> FCN:
    """FCN-16s: x2, plus pool4 scores, then x16."""
    return build_fcn((16,), num_classes, **options)


@MODELS.register("fcn8s")
def fcn8s(num_classes: int, **options: Any) -> FCN:
    """FCN-8s: x2, plus pool4 scores, x2, plus pool3 scores, then x8."""
    return build_fcn((16, 8), num_classes, **options)
