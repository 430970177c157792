"""U-Net (Ronneberger, Fischer & Brox, https://arxiv.org/abs/1505.04597), encoder-agnostic.

The decoder walks the encoder's features deep to shallow: upsample to the next skip's
resolution, concatenate the skip, two 3x3 convolutions. Any encoder that follows the contract
(``out_channels``, ``reductions``, features shallow to deep) plugs in; the default is the paper's
own contracting path, registered as encoder ``"unet"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from fcnlab.models.blocks import conv_bn_relu, fit_size
from fcnlab.models.encoders.base import StagedEncoder, scale_channels
from fcnlab.models.registry import ENCODERS, MODELS, make_encoder
from fcnlab.models.weights import WeightsSource
from fcnlab.nn import FixedUpsample, LearnedUpsample, ResizeConv

UPSAMPLE_MODES = ("learned", "bilinear", "nearest", "resize_conv")
# Parameter-free interpolations: the block's upsampled map keeps the deep channels.
INTERPOLATIONS = ("bilinear", "nearest")
BASE_CHANNELS = 64


def double_conv(in_channels: int, out_channels: int, batch_norm: bool = True) -> nn.Sequential:
    """U-Net's unit: two padded 3x3 convolutions (+ batch norm) + ReLU."""
    # A convolution followed by batch norm needs no bias: the norm's shift replaces it.
    return nn.Sequential(
        conv_bn_relu(in_channels, out_channels, batch_norm=batch_norm, bias=not batch_norm),
        conv_bn_relu(out_channels, out_channels, batch_norm=batch_norm, bias=not batch_norm),
    )


def make_upsample(mode: str, in_channels: int, out_channels: int, factor: int) -> nn.Module:
    """The upsampling step of a decoder block; ``"bilinear"`` and ``"nearest"`` keep
    ``in_channels``.

    ``"learned"`` is the paper's up-convolution: a factor x factor transpose convolution with
    stride ``factor`` (2x2 for the usual factor 2), which also sets the channel count.
    """
    if mode == "learned":
        return LearnedUpsample(
            in_channels, out_channels, factor, kernel_size=factor, init="default"
        )
    if mode in INTERPOLATIONS:
        return FixedUpsample(factor, mode)
    if mode == "resize_conv":
        return ResizeConv(in_channels, out_channels, factor)
    raise ValueError(f"U-Net upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")


class UNetBlock(nn.Module):
    """Upsample, fit to the skip (or the output size), concatenate the skip, double conv."""

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        factor: int,
        upsample: str,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        self.up = make_upsample(upsample, in_channels, out_channels, factor)
        up_channels = in_channels if upsample in INTERPOLATIONS else out_channels
        self.conv = double_conv(up_channels + skip_channels, out_channels, batch_norm)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None, size: Sequence[int]
    ) -> torch.Tensor:
        """(N, C_in, h, w) -> (N, C_out, *size); ``skip`` (N, C_skip, *size) or None."""
        x = fit_size(self.up(x), size)
        if skip is not None:
            x = torch.cat([skip, x], dim=1)
        return self.conv(x)


def _factor(deep: int, shallow: int, reductions: Sequence[int]) -> int:
    if deep % shallow:
        raise ValueError(
            f"U-Net needs each encoder reduction to be a multiple of the previous one, got "
            f"reductions {list(reductions)}"
        )
    return deep // shallow


class UNetDecoder(nn.Module):
    """Expanding path over an encoder's features, deep to shallow.

    One block per skip (every feature but the deepest). When the shallowest feature is itself
    reduced (VGG, ResNet, DarkNet start at 1/2), one more block without a skip brings the map to
    the input's resolution, with half as many channels as that feature by default.
    ``decoder_channels`` lists each block's output channels, deep to shallow.
    """

    def __init__(
        self,
        encoder_channels: Sequence[int],
        reductions: Sequence[int],
        decoder_channels: Sequence[int] | None = None,
        upsample: str = "learned",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if len(encoder_channels) < 2 or len(encoder_channels) != len(reductions):
            raise ValueError(
                f"U-Net needs at least two encoder features with one reduction each, got "
                f"out_channels {list(encoder_channels)} and reductions {list(reductions)}"
            )
        skips = list(range(len(encoder_channels) - 2, -1, -1))
        default = [encoder_channels[i] for i in skips]
        if reductions[0] > 1:
            default.append(max(1, encoder_channels[0] // 2))
        channels = list(decoder_channels) if decoder_channels is not None else default
        if len(channels) != len(default):
            raise ValueError(
                f"decoder_channels needs {len(default)} entries (one per decoder block) for "
                f"this encoder, got {len(channels)}: {channels}"
            )
        self.blocks = nn.ModuleList()
        current = encoder_channels[-1]
        for i, out in zip(skips, channels[: len(skips)], strict=True):
            factor = _factor(reductions[i + 1], reductions[i], reductions)
            self.blocks.append(
                UNetBlock(current, encoder_channels[i], out, factor, upsample, batch_norm)
            )
            current = out
        if reductions[0] > 1:
            self.blocks.append(
                UNetBlock(current, 0, channels[-1], reductions[0], upsample, batch_norm)
            )
        self.out_channels = channels[-1]

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Features shallow to deep -> (N, out_channels, *size), ``size`` the input's (H, W)."""
        skips: list[torch.Tensor | None] = list(features[-2::-1])
        skips += [None] * (len(self.blocks) - len(skips))
        x = features[-1]
        for block, skip in zip(self.blocks, skips, strict=True):
            x = block(x, skip, size if skip is None else skip.shape[-2:])
        return x


class UNet(nn.Module):
    """Encoder -> U-Net decoder -> 1x1 classifier; logits at the input's size."""

    def __init__(self, encoder: nn.Module, decoder: UNetDecoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> logits (N, num_classes, H, W)."""
        features = self.encoder(x)
        return self.head(self.decoder(features, x.shape[-2:]))


class UNetEncoder(StagedEncoder):
    """The paper's contracting path: double convs, a 2x2 max pool before each deeper stage.

    Features at reductions 1, 2, 4, ... with 64, 128, 256, ... channels (times ``width``).
    Unlike the paper, convolutions are padded (the output covers the whole input, no tiling) and
    followed by batch norm by default; pools run in ceil mode so odd sizes lose no pixel.
    """

    def __init__(
        self, in_channels: int = 3, width: float = 1.0, depth: int = 5, batch_norm: bool = True
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError(f"U-Net encoder depth must be at least 2, got {depth}")
        self.out_channels = [scale_channels(BASE_CHANNELS * 2**i, width) for i in range(depth)]
        self.reductions = [2**i for i in range(depth)]
        self.stages = nn.ModuleList()
        previous = in_channels
        for i, channels in enumerate(self.out_channels):
            pool = [nn.MaxPool2d(2, ceil_mode=True)] if i else []
            self.stages.append(nn.Sequential(*pool, double_conv(previous, channels, batch_norm)))
            previous = channels


@ENCODERS.register("unet")
def unet_encoder(
    in_channels: int = 3, width: float = 1.0, depth: int = 5, batch_norm: bool = True
) -> UNetEncoder:
    """U-Net's contracting path (64 to 1024 channels over 5 stages at ``width=1``)."""
    return UNetEncoder(in_channels, width, depth, batch_norm)


@MODELS.register("unet")
def unet(
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    upsample: str = "learned",
    decoder_channels: Sequence[int] | None = None,
    batch_norm: bool = True,
) -> UNet:
    """U-Net: the paper's architecture by default (31.0M parameters without batch norm).

    ``upsample``: ``"learned"`` (2x2 up-convolution, as published), ``"bilinear"`` or
    ``"nearest"`` (fixed interpolation, the skip concatenated to all deep channels; ``"nearest"``
    is segmentation_models_pytorch's ``Unet`` default, and on CPU its backward costs well under
    half of bilinear's) or ``"resize_conv"`` (nearest resize + 3x3 convolution). ``encoder`` may
    be any registered encoder (``"resnet34"``, ``"vgg16_bn"``, ...). ``batch_norm`` applies to
    the decoder; the encoder's is an ``encoder_options`` entry. Default ``decoder_channels``
    mirror the encoder's channels.
    """
    built = make_encoder(encoder, "unet", encoder_weights, encoder_options)
    decoder = UNetDecoder(
        built.out_channels, built.reductions, decoder_channels, upsample, batch_norm
    )
    return UNet(built, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1))
