"""CenterNet (Zhou, Wang & Krähenbühl, *Objects as Points*, https://arxiv.org/abs/1904.07850).

An object is the peak of a class heatmap at its box centre, plus the box's size and the centre's
sub-pixel offset read at that peak. Encoder -> upsampling decoder to stride 4 -> three heads.
The decoder is the paper's ResNet variant: per x2 step a 3x3 convolution (the paper's is
deformable; a plain one here) and an up-convolution initialised to bilinear interpolation,
each followed by batch norm and ReLU; ``upsample="resize_conv"`` swaps the up-convolution for
nearest resize + 3x3 convolution. Decoding needs no NMS: a peak is a cell equal to its 3x3
max-pooled self.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.blocks import conv_bn_relu, fit_size, init_prior_bias, tower
from fcnlab.models.detection.decoding import ltrb_to_boxes
from fcnlab.models.detection.losses import penalty_reduced_focal_loss
from fcnlab.models.detection.targets import centernet_targets, check_batch
from fcnlab.models.registry import MODELS, make_encoder
from fcnlab.models.weights import WeightsSource
from fcnlab.nn import LearnedUpsample, ResizeConv
from fcnlab.ops.boxes import clip_boxes

UPSAMPLE_MODES = ("learned", "resize_conv")
OUTPUT_STRIDE = 4
# Heatmap bias -log((1 - 0.1) / 0.1): every cell starts at probability 0.1 (the paper's -2.19).
HEATMAP_PRIOR = 0.1


def upsample_steps(reduction: int, stride: int) -> int:
    """Number of x2 steps from an encoder feature at ``reduction`` to the output ``stride``."""
    steps = math.log2(reduction / stride) if reduction >= stride else -1
    if steps != int(steps) or steps < 0:
        raise ValueError(
            f"CenterNet upsamples by powers of 2 from the encoder's deepest feature to stride "
            f"{stride}; that feature's reduction {reduction} is not {stride} times a power of 2"
        )
    return int(steps)


class CenterNetDecoder(nn.Module):
    """The deepest encoder feature -> stride 4: (3x3 conv, x2 upsample) per step, BN + ReLU each.

    The output is cropped (or edge-extended) to ``ceil(H / 4) x ceil(W / 4)`` so that cell
    (x, y) covers input pixels [4x, 4x + 4) for any input size.
    """

    def __init__(
        self,
        in_channels: int,
        reduction: int,
        channels: Sequence[int] | None = None,
        upsample: str = "learned",
        stride: int = OUTPUT_STRIDE,
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(
                f"CenterNet upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}"
            )
        steps = upsample_steps(reduction, stride)
        channels = (
            [64 * 2 ** (steps - 1 - i) for i in range(steps)] if channels is None else channels
        )
        if len(channels) != steps:
            raise ValueError(
                f"decoder_channels needs {steps} entries (one per x2 step from reduction "
                f"{reduction} to stride {stride}), got {len(channels)}: {list(channels)}"
            )
        self.stride = stride
        layers: list[nn.Module] = []
        previous = in_channels
        for out in channels:
            up = (
                LearnedUpsample(out, out, 2, bias=False)
                if upsample == "learned"
                else ResizeConv(out, out, 2, bias=False)
            )
            layers += [
                conv_bn_relu(previous, out, bias=False),
                nn.Sequential(up, nn.BatchNorm2d(out), nn.ReLU(inplace=True)),
            ]
            previous = out
        self.layers = nn.Sequential(*layers)
        self.out_channels = previous

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Features shallow to deep, input (H, W) -> (N, C, ceil(H/4), ceil(W/4))."""
        h, w = (math.ceil(s / self.stride) for s in size)
        return fit_size(self.layers(features[-1]), (h, w))


def head_branch(in_channels: int, out_channels: int, hidden: int) -> nn.Sequential:
    """CenterNet's head: 3x3 convolution, ReLU, 1x1 convolution."""
    return nn.Sequential(
        *tower(in_channels, hidden, 1, norm=None), nn.Conv2d(hidden, out_channels, 1)
    )


class CenterNetHead(nn.Module):
    """Class heatmap logits (C), box size (2: w, h in cells), sub-cell centre offset (2)."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.heatmap = head_branch(in_channels, num_classes, hidden)
        self.size = head_branch(in_channels, 2, hidden)
        self.offset = head_branch(in_channels, 2, hidden)
        init_prior_bias(self.heatmap[-1], HEATMAP_PRIOR)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, C_in, h, w) -> {"heatmap": (N, C, h, w), "size": (N, 2, h, w), "offset": ...}."""
        return {"heatmap": self.heatmap(x), "size": self.size(x), "offset": self.offset(x)}


def heatmap_peaks(
    heatmap: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``top_k`` highest local maxima of a (N, C, h, w) score map.

    A peak is a cell equal to the maximum of its 3x3 neighbourhood (CenterNet's replacement for
    NMS; plateaus give several peaks). Returns ``scores`` (N, K), ``labels`` (N, K) and ``cells``
    (N, K) flat ``y * w + x`` indices, K = min(top_k, C h w), by decreasing score.
    """
    n, c, h, w = heatmap.shape
    peaks = heatmap == F.max_pool2d(heatmap, 3, stride=1, padding=1)
    scores = torch.where(peaks, heatmap, torch.zeros_like(heatmap)).reshape(n, -1)
    scores, index = scores.topk(min(top_k, c * h * w), dim=1)
    return scores, index // (h * w), index % (h * w)


class CenterNet(nn.Module):
    """Encoder -> ``CenterNetDecoder`` -> ``CenterNetHead``; ``forward`` returns raw head maps."""

    task = "detection"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: CenterNetDecoder,
        head: CenterNetHead,
        num_classes: int,
        size_weight: float = 0.1,
        offset_weight: float = 1.0,
        min_overlap: float = 0.7,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.num_classes, self.stride = num_classes, decoder.stride
        self.size_weight, self.offset_weight, self.min_overlap = (
            size_weight,
            offset_weight,
            min_overlap,
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> {"heatmap" logits (N, C, h, w), "size" and "offset" (N, 2, h, w)}."""
        return self.head(self.decoder(self.encoder(x), x.shape[-2:]))

    def loss(
        self, outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """Focal loss on the heatmap + 0.1 L1 on sizes + L1 on offsets, at object centres.

        The focal loss is divided by the number of objects in the batch, the L1 terms are
        means over objects and coordinates (CenterNet's normalisation). Keys "loss" (the
        weighted total), "heatmap", "size", "offset".
        """
        logits = outputs["heatmap"]
        check_batch(targets, len(logits))
        h, w = logits.shape[-2:]
        made = [
            centernet_targets(t, self.num_classes, (h, w), self.stride, i, self.min_overlap)
            for i, t in enumerate(targets)
        ]
        heatmap = torch.stack([m["heatmap"] for m in made]).to(logits)
        image = torch.cat([torch.full_like(m["cell"], i) for i, m in enumerate(made)])
        cell = torch.cat([m["cell"] for m in made])
        image, cell = image.to(logits.device), cell.to(logits.device)
        # Sizes and offsets at the objects' centre cells: (M, 2) each.
        size = outputs["size"].flatten(2)[image, :, cell]
        offset = outputs["offset"].flatten(2)[image, :, cell]
        target_size = torch.cat([m["size"] for m in made]).to(size)
        target_offset = torch.cat([m["offset"] for m in made]).to(offset)
        count = max(len(cell), 1)
        losses = {
            "heatmap": penalty_reduced_focal_loss(logits, heatmap) / count,
            "size": F.l1_loss(size, target_size, reduction="sum") / (2 * count),
            "offset": F.l1_loss(offset, target_offset, reduction="sum") / (2 * count),
        }
        losses["loss"] = (
            losses["heatmap"]
            + self.size_weight * losses["size"]
            + self.offset_weight * losses["offset"]
        )
        return losses

    @torch.no_grad()
    def decode(
        self,
        outputs: Mapping[str, torch.Tensor],
        image_size: Sequence[int],
        score_threshold: float = 0.05,
        top_k: int = 100,
    ) -> list[dict[str, torch.Tensor]]:
        """Detections per image: {"boxes" (K, 4) xyxy input pixels, "scores" (K,), "labels"}.

        The ``top_k`` heatmap peaks with a score of at least ``score_threshold``; each box is
        centred at (cell + offset) * stride with the predicted size, clipped to ``image_size``
        (H, W), the size of the input given to ``forward``.
        """
        scores, labels, cells = heatmap_peaks(outputs["heatmap"].sigmoid(), top_k)
        w = outputs["heatmap"].shape[-1]
        index = cells[:, None, :].expand(-1, 2, -1)
        offset = outputs["offset"].flatten(2).gather(2, index).transpose(1, 2)
        size = outputs["size"].flatten(2).gather(2, index).transpose(1, 2)
        cell_xy = torch.stack((cells % w, cells // w), dim=-1).to(offset)
        centre = (cell_xy + offset) * self.stride
        half = size.clamp(min=0) * self.stride / 2
        boxes = clip_boxes(ltrb_to_boxes(centre, torch.cat((half, half), dim=-1)), image_size)
        # Peaks come by decreasing score (never NaN: a NaN cell is no peak), so each image
        # keeps a prefix, and its length is the one value read to the host.
        counts = (scores >= score_threshold).sum(dim=1).tolist()
        return [
            {"boxes": b[:k], "scores": s[:k], "labels": lab[:k]}
            for b, s, lab, k in zip(boxes, scores, labels, counts, strict=True)
        ]


@MODELS.register("centernet")
def centernet(
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    upsample: str = "learned",
    decoder_channels: Sequence[int] | None = None,
    head_channels: int = 64,
) -> CenterNet:
    """CenterNet on any registered encoder (default ``"resnet18"``, the paper's ResNet-18 model).

    ``upsample``: ``"learned"`` (up-convolutions with bilinear initialisation, as published) or
    ``"resize_conv"``. ``decoder_channels`` defaults to (256, 128, 64) for an encoder of
    reduction 32; ``head_channels`` is the hidden width of each head (64 in the paper for
    ResNets). Differs from the paper: plain instead of deformable 3x3 convolutions.
    """
    built = make_encoder(encoder, "resnet18", encoder_weights, encoder_options)
    decoder = CenterNetDecoder(
        built.out_channels[-1], built.reductions[-1], decoder_channels, upsample
    )
    return CenterNet(
        built, decoder, CenterNetHead(decoder.out_channels, num_classes, head_channels), num_classes
    )
