"""FCOS (Tian, Shen, Chen & He, *FCOS: Fully Convolutional One-Stage Object Detection*,
https://arxiv.org/abs/1904.01355).

Every location of a feature pyramid classifies the object it lies in and regresses its distances
to the box's four sides, no anchors. Encoder -> FPN (P3-P7) -> one head shared by all levels:
classification (sigmoid focal loss), ltrb regression (GIoU loss) and centre-ness (BCE), which
down-weights locations far from a box centre at test time. Locations are assigned to levels by
the size of the box as seen from them (``max(l, t, r, b)``), and with centre sampling only
locations near a box centre are positives. Decoding: score threshold, top K per level,
class-wise NMS.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.blocks import init_prior_bias, tower
from fcnlab.models.detection.decoding import ltrb_to_boxes, split_by_image
from fcnlab.models.detection.losses import giou_loss, sigmoid_focal_loss
from fcnlab.models.detection.targets import (
    IGNORE,
    centerness_target,
    check_batch,
    check_targets,
    fcos_batch_targets,
    fcos_locations,
)
from fcnlab.models.necks import FPN
from fcnlab.models.registry import MODELS, make_encoder
from fcnlab.models.weights import WeightsSource
from fcnlab.ops.boxes import batched_nms, clip_boxes

# max(l, t, r, b) ranges of P3..P7 (the paper's m_2..m_7 = 0, 64, 128, 256, 512, inf).
SIZE_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, math.inf))
# RetinaNet's prior: every location's class probabilities start at 0.01.
CLASS_PRIOR = 0.01
# exp() of the regression stays below e^10 strides, so early training cannot overflow.
MAX_LOG_DISTANCE = 10.0


class FCOSHead(nn.Module):
    """The head shared by all levels: a classification and a regression tower of 4 conv-GN-ReLU.

    Centre-ness is a branch parallel to classification, as in the paper. Distances are
    ``exp(s_k x) * stride_k`` with a learnt scalar ``s_k`` per level; the stride factor (from
    FCOS's released code) lets every level start at about one stride.
    """

    def __init__(
        self, channels: int, num_classes: int, strides: Sequence[int], depth: int = 4
    ) -> None:
        super().__init__()
        self.strides = tuple(strides)
        self.cls_tower = tower(channels, channels, depth)
        self.reg_tower = tower(channels, channels, depth)
        self.cls_logits = nn.Conv2d(channels, num_classes, 3, padding=1)
        self.centerness = nn.Conv2d(channels, 1, 3, padding=1)
        self.ltrb = nn.Conv2d(channels, 4, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(strides)))
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)
        init_prior_bias(self.cls_logits, CLASS_PRIOR)

    def forward(self, levels: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """[P3..P7] -> {"cls_logits" (N, L, C), "ltrb" (N, L, 4) pixels, "centerness" (N, L)}.

        L counts the locations of all levels, level after level, each row-major.
        """
        return self.predict(self.towers(levels))

    def towers(self, levels: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(classification tower, regression tower) outputs of each level: what the output
        convolutions read, and what models built on FCOS (CondInst's controller) read too."""
        return [(self.cls_tower(p), self.reg_tower(p)) for p in levels]

    def predict(
        self, towers: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """The head's outputs (see :meth:`forward`) from the towers' outputs per level."""
        cls, ltrb, ctr = [], [], []
        for k, ((c, r), stride) in enumerate(zip(towers, self.strides, strict=True)):
            cls.append(self.cls_logits(c).flatten(2).transpose(1, 2))
            ctr.append(self.centerness(c).flatten(1))
            log_distance = (self.scales[k] * self.ltrb(r)).clamp(max=MAX_LOG_DISTANCE)
            ltrb.append((log_distance.exp() * stride).flatten(2).transpose(1, 2))
        return {
            "cls_logits": torch.cat(cls, dim=1),
            "ltrb": torch.cat(ltrb, dim=1),
            "centerness": torch.cat(ctr, dim=1),
        }


class FCOS(nn.Module):
    """Encoder -> ``FPN`` (``decoder``) -> ``FCOSHead``; ``forward`` returns raw head outputs."""

    task = "detection"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: FPN,
        head: FCOSHead,
        num_classes: int,
        center_radius: float | None = 1.5,
        size_ranges: Sequence[Sequence[float]] = SIZE_RANGES,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.num_classes, self.strides = num_classes, head.strides
        self.center_radius, self.size_ranges = center_radius, tuple(size_ranges)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> head outputs plus "points" (L, 2) input pixels and "level" (L,)."""
        levels = self.decoder(self.encoder(x))
        outputs = self.head(levels)
        sizes = [p.shape[-2:] for p in levels]
        outputs["points"], outputs["level"] = fcos_locations(sizes, self.strides, x.device)
        return outputs

    def targets(
        self, outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """``fcos_targets`` of each image of a batch, computed for the whole batch at once
        (``fcos_batch_targets``): "labels" (N, L), "ltrb" (N, L, 4) and "index" (N, L), each
        location's assigned box (-1 where none)."""
        check_batch(targets, len(outputs["cls_logits"]))
        boxes, labels, crowd, counts = check_targets(targets, self.num_classes)
        return fcos_batch_targets(
            boxes,
            labels,
            crowd,
            counts,
            outputs["points"],
            outputs["level"],
            self.strides,
            self.size_ranges,
            self.center_radius,
        )

    def loss(
        self, outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """Focal loss over all locations / positives + GIoU loss + centre-ness BCE on positives.

        Locations labelled ``IGNORE`` (inside crowd boxes only) give no classification loss.
        Keys "loss" (the sum), "cls", "box", "centerness".
        """
        return self.losses_for(outputs, self.targets(outputs, targets))

    def losses_for(
        self, outputs: Mapping[str, torch.Tensor], made: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """:meth:`loss` from the batch's assignment ``made`` (:meth:`targets`), which models
        built on FCOS compute once and use for their own losses too."""
        logits = outputs["cls_logits"]
        labels, ltrb = made["labels"], made["ltrb"]
        positive = labels >= 0
        num_positive = max(int(positive.sum()), 1)
        onehot = F.one_hot(labels.clamp(min=0), self.num_classes).to(logits)
        onehot = onehot * positive[..., None]
        valid = labels != IGNORE
        target_ltrb = ltrb[positive]
        predicted = outputs["ltrb"][positive]
        # Both boxes around their location as the origin: GIoU needs no absolute positions.
        origin = predicted.new_zeros(len(predicted), 2)
        losses = {
            "cls": sigmoid_focal_loss(logits[valid], onehot[valid]) / num_positive,
            "box": giou_loss(
                ltrb_to_boxes(origin, predicted), ltrb_to_boxes(origin, target_ltrb)
            ).sum()
            / num_positive,
            "centerness": F.binary_cross_entropy_with_logits(
                outputs["centerness"][positive],
                centerness_target(target_ltrb).to(logits),
                reduction="sum",
            )
            / num_positive,
        }
        losses["loss"] = losses["cls"] + losses["box"] + losses["centerness"]
        return losses

    @torch.no_grad()
    def decode(
        self,
        outputs: Mapping[str, torch.Tensor],
        image_size: Sequence[int],
        score_threshold: float = 0.05,
        top_k: int = 100,
        pre_nms_top_k: int = 1000,
        nms_threshold: float = 0.6,
    ) -> list[dict[str, torch.Tensor]]:
        """Detections per image: {"boxes" (K, 4) xyxy input pixels, "scores" (K,), "labels",
        "locations" (K,) int64 (the row of each detection's location in L)}.

        Score = sqrt(class probability x centre-ness) (FCOS's released code; the paper's product
        ranks the same). Per level, the ``pre_nms_top_k`` best (location, class) pairs scoring
        at least ``score_threshold``; boxes clipped to ``image_size`` (H, W); class-wise NMS at
        ``nms_threshold``; the ``top_k`` best.

        The whole batch at once, as torchvision's and detectron2's post-processing per image:
        one top-k per level over all images (levels are runs of L, as ``forward`` orders them),
        one class-wise NMS over all images (image and class together make the NMS group). The
        host reads the locations per level, the number of candidates, NMS's few counts and the
        detections per image: never a value per image or per level.
        """
        # In place: the (N, L, C) maps are decoding's largest memory traffic.
        scores = outputs["cls_logits"].sigmoid()
        scores = scores.mul_(outputs["centerness"].sigmoid()[..., None]).sqrt_()
        n, _, c = scores.shape
        # Non-candidates (NaN too) at -inf: a top-k over all pairs then picks the candidates
        # first, in the order a top-k over the candidates alone gives. A score passes
        # ``>= score_threshold`` exactly when it is above the next lower value of its dtype.
        below = torch.tensor(score_threshold, dtype=scores.dtype)
        below = float(below.nextafter(torch.tensor(-math.inf, dtype=scores.dtype)))
        scores = F.threshold_(scores.nan_to_num_(nan=-math.inf), below, -math.inf)
        flat = scores.flatten(1)
        values, pairs, first = [], [], 0
        for count in torch.bincount(outputs["level"], minlength=len(self.strides)).tolist():
            best = flat[:, first * c : (first + count) * c].topk(
                min(pre_nms_top_k, count * c), dim=1
            )
            values.append(best.values)
            pairs.append(best.indices + first * c)
            first += count
        values, pairs = torch.cat(values, dim=1), torch.cat(pairs, dim=1)
        image, column = (values >= score_threshold).nonzero().unbind(1)
        pair, score = pairs[image, column], values[image, column]
        location, label = pair // c, pair % c
        boxes = ltrb_to_boxes(outputs["points"][location], outputs["ltrb"][image, location])
        boxes = clip_boxes(boxes, image_size)
        keep = batched_nms(boxes, score, image * c + label, nms_threshold)
        detections = {
            "boxes": boxes[keep],
            "scores": score[keep],
            "labels": label[keep],
            "locations": location[keep],
        }
        return split_by_image(detections, image[keep], n, top_k)


@MODELS.register("fcos")
def fcos(
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    fpn_channels: int = 256,
    head_depth: int = 4,
    center_sampling: float | None = 1.5,
) -> FCOS:
    """FCOS on any registered encoder with features at reductions 8, 16 and 32.

    The default encoder is ``"resnet50"``, the paper's.
    ``fpn_channels`` is the width of the pyramid and the head (256 in the paper); ``head_depth``
    the convolutions per tower (4); ``center_sampling`` the centre-region radius in strides
    (1.5; None: every location inside a box). Differs from the paper: GIoU instead of IoU loss,
    centre sampling and stride-normalised distances (the authors' later improvements).
    """
    built = make_encoder(encoder, "resnet50", encoder_weights, encoder_options)
    decoder = FPN(built.out_channels, built.reductions, channels=fpn_channels)
    head = FCOSHead(fpn_channels, num_classes, decoder.strides, head_depth)
    return FCOS(built, decoder, head, num_classes, center_sampling)
