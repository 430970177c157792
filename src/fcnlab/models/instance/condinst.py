"""CondInst (Tian, Shen & Chen, *Conditional Convolutions for Instance Segmentation*, ECCV 2020,
https://arxiv.org/abs/2003.05664).

FCOS finds the instances; every location also predicts, with a "controller" convolution, the
169 weights of a tiny mask head of its own (three 1x1 layers, see ``dynamic``). That head runs on
mask features shared by the whole image (``MaskBranch``, P3-P5 fused to 8 channels at stride 8)
plus two channels of coordinates relative to the location, so one set of features yields a
different mask for every instance: no RoI cropping, no fixed mask resolution per box. Masks are
predicted at stride 8, upsampled to stride 4 and trained with the dice loss on FCOS's positive
locations, each against the mask of the box it is assigned to.

Mask grids (the contract of ``fcnlab.ops.masks.paste_masks_chunks``): cell (x, y) at stride s
covers input pixels [x s, (x+1) s) x [y s, (y+1) s) of the padded batch. Masks at stride 4 of an
(H, W) input have ceil(H / 4) x ceil(W / 4) cells, so they cover it whatever the encoder's
rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from fcnlab.models.detection.fcos import FCOS, SIZE_RANGES, FCOSHead, fcos
from fcnlab.models.detection.targets import check_batch, fcos_locations
from fcnlab.models.instance.dynamic import (
    COORDINATE_CHANNELS,
    dynamic_head_inputs,
    dynamic_mask_head,
    dynamic_params_count,
)
from fcnlab.models.instance.mask_branch import MaskBranch, upsample_cells
from fcnlab.models.instance.targets import instance_masks, masks_at_stride
from fcnlab.models.necks import FPN
from fcnlab.models.registry import MODELS
from fcnlab.models.weights import WeightsSource
from fcnlab.ops.masks import dice_loss

# Relative coordinates of a level's instances are divided by its size of interest: AdelaiDet's
# FCOS.SIZES_OF_INTEREST (64, 128, 256, 512, the upper bounds of P3-P6's ranges) and twice the
# last for P7, whose range is unbounded.
SIZES_OF_INTEREST = (64.0, 128.0, 256.0, 512.0, 1024.0)
# Positive locations whose masks are trained, per image, drawn at random. AdelaiDet's CondInst
# draws 500 per GPU (MODEL.CONDINST.MAX_PROPOSALS in Base-CondInst.yaml) with 2 images per GPU
# (16 images on 8 GPUs); per image, the bound does not depend on how a batch is split.
MAX_PROPOSALS = 250


class CondInst(FCOS):
    """FCOS (encoder -> ``FPN`` -> ``FCOSHead``) + ``controller`` + ``mask_branch``.

    ``forward`` returns FCOS's raw outputs plus "controller" (N, L, P), every location's mask-head
    parameters, and "mask_features" (N, C, H/8, W/8); ``loss`` adds the dice loss "mask" to
    FCOS's; ``decode`` adds each detection's mask probabilities at ``mask_stride``.
    """

    task = "instance"
    # Input pixels per cell of the masks that loss and decode use.
    mask_stride = 4

    def __init__(
        self,
        encoder: nn.Module,
        decoder: FPN,
        head: FCOSHead,
        controller: nn.Conv2d,
        mask_branch: MaskBranch,
        num_classes: int,
        center_radius: float | None = 1.5,
        size_ranges: Sequence[Sequence[float]] = SIZE_RANGES,
        mask_head_channels: int = 8,
        mask_head_layers: int = 3,
        max_proposals: int | None = MAX_PROPOSALS,
        sizes_of_interest: Sequence[float] = SIZES_OF_INTEREST,
    ) -> None:
        super().__init__(encoder, decoder, head, num_classes, center_radius, size_ranges)
        self.controller, self.mask_branch = controller, mask_branch
        self.mask_head_channels, self.mask_head_layers = mask_head_channels, mask_head_layers
        self.max_proposals = max_proposals
        self.sizes_of_interest = tuple(float(s) for s in sizes_of_interest)
        branch_strides = tuple(decoder.strides[: len(mask_branch.strides)])
        params = dynamic_params_count(
            mask_branch.out_channels + COORDINATE_CHANNELS, mask_head_channels, mask_head_layers
        )
        if branch_strides != mask_branch.strides:
            raise ValueError(
                f"the mask branch reads strides {list(mask_branch.strides)} but the pyramid "
                f"starts with {list(branch_strides)}"
            )
        if mask_branch.out_stride % self.mask_stride:
            raise ValueError(
                f"mask features at stride {mask_branch.out_stride} cannot be upsampled to "
                f"stride {self.mask_stride} by an integer factor"
            )
        if controller.out_channels != params:
            raise ValueError(
                f"the controller predicts {controller.out_channels} parameters per location; "
                f"a mask head of {mask_head_layers} layers of {mask_head_channels} channels on "
                f"{mask_branch.out_channels} + {COORDINATE_CHANNELS} inputs needs {params}"
            )
        if len(self.sizes_of_interest) != len(self.strides):
            raise ValueError(
                f"sizes_of_interest {list(self.sizes_of_interest)} needs one size per pyramid "
                f"level ({len(self.strides)})"
            )
        if max_proposals is not None and max_proposals < 1:
            raise ValueError(f"max_proposals must be >= 1 or None, got {max_proposals}")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> FCOS's outputs, "controller" (N, L, P), "mask_features" (N, C, h, w)
        at the mask branch's stride (8), "points" (L, 2) and "level" (L,)."""
        levels = self.decoder(self.encoder(x))
        # The controller reads the box tower's output, as in the authors' code (AdelaiDet's
        # top_module on bbox_tower).
        towers = self.head.towers(levels)
        outputs = self.head.predict(towers)
        outputs["controller"] = torch.cat(
            [self.controller(r).flatten(2).transpose(1, 2) for _, r in towers], dim=1
        )
        outputs["mask_features"] = self.mask_branch(levels)
        sizes = [p.shape[-2:] for p in levels]
        outputs["points"], outputs["level"] = fcos_locations(sizes, self.strides, x.device)
        return outputs

    def mask_logits(
        self,
        outputs: Mapping[str, torch.Tensor],
        image: int,
        locations: torch.Tensor,
        size: Sequence[int],
    ) -> torch.Tensor:
        """Mask logits (K, h, w) at ``mask_stride`` of the instances that locations
        ``locations`` (K,) of image ``image`` predict, on a grid of ``size`` (h, w) cells."""
        level = outputs["level"][locations]
        scales = torch.tensor(self.sizes_of_interest, device=level.device)[level]
        features = outputs["mask_features"]
        inputs = dynamic_head_inputs(
            features,
            torch.full_like(locations, image),
            outputs["points"][locations],
            scales,
            self.mask_branch.out_stride,
        )
        params = outputs["controller"][image, locations]
        logits = dynamic_mask_head(inputs, params, self.mask_head_channels, self.mask_head_layers)
        factor = self.mask_branch.out_stride // self.mask_stride
        return upsample_cells(logits, factor, size)[:, 0]

    def sample_positives(self, positive: torch.Tensor) -> torch.Tensor:
        """At most ``max_proposals`` of the positive locations ``positive`` (P,), drawn at
        random with torch's default generator (reproducible under ``torch.manual_seed``)."""
        if self.max_proposals is None or len(positive) <= self.max_proposals:
            return positive
        order = torch.randperm(len(positive), device=positive.device)
        return positive[order[: self.max_proposals]]

    def mask_loss(
        self,
        outputs: Mapping[str, torch.Tensor],
        targets: Sequence[Mapping[str, Any]],
        assigned: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean dice loss of the (capped) positive locations' masks at ``mask_stride`` against
        their assigned instances' masks (``masks_at_stride``). ``assigned`` (N, L) is FCOS's
        assignment of the batch (:meth:`targets`' "index"), computed here when not given.

        Without any positive in the batch, 0 times the mask features and the controller: the
        loss stays in the graph and every parameter gets a (zero) gradient, as DDP needs.
        """
        check_batch(targets, len(outputs["mask_features"]))
        if assigned is None:
            assigned = self.targets(outputs, targets)["index"]
        losses = []
        for i, target in enumerate(targets):
            index = assigned[i]
            positive = self.sample_positives((index >= 0).nonzero()[:, 0])
            masks = instance_masks(target, i).to(positive.device)
            if len(positive) == 0:
                continue
            # Downsampled before picking: positives share instances, full-size copies would not.
            truth = masks_at_stride(masks, self.mask_stride)[index[positive]]
            logits = self.mask_logits(outputs, i, positive, truth.shape[-2:])
            losses.append(dice_loss(logits.sigmoid(), truth))
        if not losses:
            return (outputs["mask_features"].sum() + outputs["controller"].sum()) * 0
        return torch.cat(losses).mean()

    def loss(
        self, outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """FCOS's losses ("cls", "box", "centerness") + the dice "mask" loss (weight 1); "loss"
        is their sum. FCOS's assignment is computed once and serves both."""
        made = self.targets(outputs, targets)
        losses = self.losses_for(outputs, made)
        losses["mask"] = self.mask_loss(outputs, targets, made["index"])
        losses["loss"] = losses["loss"] + losses["mask"]
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
        """FCOS's detections per image plus "masks" float (K, ceil(H / 4), ceil(W / 4)), each
        detection's mask probabilities at ``mask_stride`` for the batch's input size
        ``image_size`` (H, W).

        The boxes, scores, labels and "locations" are FCOS's (box NMS picks the instances); each
        kept location's own mask head makes its mask.
        """
        found = super().decode(
            outputs, image_size, score_threshold, top_k, pre_nms_top_k, nms_threshold
        )
        size = [math.ceil(int(v) / self.mask_stride) for v in image_size]
        for i, detections in enumerate(found):
            logits = self.mask_logits(outputs, i, detections["locations"], size)
            detections["masks"] = logits.sigmoid()
        return found


@MODELS.register("condinst")
def condinst(
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    fpn_channels: int = 256,
    head_depth: int = 4,
    center_sampling: float | None = 1.5,
    mask_channels: int = 8,
    mask_branch_channels: int = 128,
    mask_branch_depth: int = 4,
    mask_head_channels: int = 8,
    mask_head_layers: int = 3,
    max_proposals: int | None = MAX_PROPOSALS,
) -> CondInst:
    """CondInst on any registered encoder with features at reductions 8, 16 and 32.

    The default encoder is ``"resnet50"``, the paper's. FCOS's options (``fpn_channels``,
    ``head_depth``, ``center_sampling``) as in ``fcos``; ``mask_channels`` the mask features'
    width (8), ``mask_branch_channels`` and ``mask_branch_depth`` the mask branch's width and
    tower (128, 4); ``mask_head_channels`` and ``mask_head_layers`` the dynamic head (8, 3:
    169 parameters per instance); ``max_proposals`` the positives per image whose masks are
    trained (None: all). Differs from the paper: masks at stride 4, as the authors' released
    configs (the paper used 2); no auxiliary semantic loss; FCOS's own differences (GIoU loss,
    centre sampling, centre-ness beside classification, where AdelaiDet puts it beside the box
    regression); bilinear upsampling with cell centres aligned (AdelaiDet's ``aligned_bilinear``
    reads half an output cell further up and left); the cap is per image rather than per GPU.
    """
    detector = fcos(
        num_classes, encoder, encoder_weights, encoder_options, fpn_channels, head_depth,
        center_sampling,
    )  # fmt: skip
    mask_branch = MaskBranch(
        fpn_channels,
        channels=mask_branch_channels,
        out_channels=mask_channels,
        depth=mask_branch_depth,
    )
    params = dynamic_params_count(
        mask_channels + COORDINATE_CHANNELS, mask_head_channels, mask_head_layers
    )
    controller = nn.Conv2d(fpn_channels, params, 3, padding=1)
    nn.init.normal_(controller.weight, std=0.01)
    nn.init.zeros_(controller.bias)
    return CondInst(
        detector.encoder,
        detector.decoder,
        detector.head,
        controller,
        mask_branch,
        num_classes,
        center_sampling,
        mask_head_channels=mask_head_channels,
        mask_head_layers=mask_head_layers,
        max_proposals=max_proposals,
    )
