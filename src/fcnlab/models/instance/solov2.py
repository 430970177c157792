"""SOLOv2 (Wang, Zhang, Kong, Li & Shen, *SOLOv2: Dynamic and Fast Instance Segmentation*,
NeurIPS 2020, https://arxiv.org/abs/2003.10152).

Segmenting objects by locations: the image is divided into an S x S grid, and the grid cell that
holds an object's centre of mass segments that object. Per pyramid level (S = 40, 36, 24, 16, 12
from P2 to P6, each level for objects of one range of sizes), the level's features are resized to
S x S and two heads of 3x3 conv-GN-ReLU run on them: the category branch classifies every cell
(sigmoid focal loss), the kernel branch, which also sees two coordinate channels, predicts every
cell's dynamic 1x1 kernel of E weights. One mask-feature map of E channels at stride 4, shared by
the whole image (``MaskBranch`` with SOLOv2's options: P2-P5 climbing to stride 4 and summed),
turns a kernel into its cell's mask: mask = sigmoid(kernel . features) at every position. No
boxes anywhere; masks are trained with the dice loss (weight 3) against the cell's object.

At inference the category probabilities keep only local peaks (a 2x2 max-pool, "points NMS"),
cells above a threshold make their masks, each score is multiplied by its mask's "maskness"
(the mean probability inside the binary mask) and Matrix NMS (``fcnlab.ops.matrix_nms``) decays
the scores of masks that overlap a better one of their class, in parallel.

Mask grids (the contract of ``fcnlab.ops.masks.paste_masks_chunks``): cell (x, y) at stride s
covers input pixels [x s, (x+1) s) x [y s, (y+1) s) of the padded batch; an (H, W) input has
masks of ceil(H / 4) x ceil(W / 4) cells. Category grids are relative to the whole padded input:
cell (i, j) of an S x S grid covers rows [i H / S, (i+1) H / S) and columns [j W / S,
(j+1) W / S), so cells are not square unless the input is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models.blocks import fit_size, group_norm, init_prior_bias, tower
from fcnlab.models.detection.losses import sigmoid_focal_loss
from fcnlab.models.detection.targets import check_batch, check_target
from fcnlab.models.instance.mask_branch import MaskBranch, coordinate_channels
from fcnlab.models.instance.targets import instance_masks, masks_at_stride
from fcnlab.models.necks import FPN
from fcnlab.models.registry import MODELS, make_encoder
from fcnlab.models.weights import WeightsSource
from fcnlab.ops.masks import dice_loss, masks_to_boxes, paste_masks_chunks
from fcnlab.ops.matrix_nms import matrix_nms

# The paper's grids and object sizes (sqrt(w h) of the box, input pixels) per level, P2 to P6.
# The ranges overlap: an object near a boundary is a positive of two levels.
NUM_GRIDS = (40, 36, 24, 16, 12)
SCALE_RANGES = ((1.0, 96.0), (48.0, 192.0), (96.0, 384.0), (192.0, 768.0), (384.0, 2048.0))
# The pyramid the heads and the mask branch read: P2-P5 (P6 is derived from P5, see grid_levels).
PYRAMID_STRIDES = (4, 8, 16, 32)
# The strides of the maps the authors' heads resize to their grids (P2 halved to 8, P6 brought
# back to P5's 32). At inference a level's mask of no more stride-4 cells than this is dropped.
LEVEL_STRIDES = (8, 8, 16, 32, 32)
# The centre region: the box scaled by this about the centre of mass (the paper's epsilon = 0.2).
CENTRE_SCALE = 0.2
# Weight of the dice loss (the paper's lambda = 3).
MASK_WEIGHT = 3.0
# RetinaNet's prior: every cell's class probabilities start at 0.01.
CLASS_PRIOR = 0.01


def points_nms(scores: torch.Tensor) -> torch.Tensor:
    """Category probabilities (N, C, S, S) with every cell that is not a local peak set to 0.

    A cell survives when no neighbour above, to the left or above-left is higher: the authors'
    2x2 max-pool with stride 1 and padding 1, whose window ending at cell (i, j) covers cells
    (i-1..i, j-1..j). Equal neighbours both survive.
    """
    peaks = F.max_pool2d(scores, 2, stride=1, padding=1)[..., :-1, :-1]
    return scores * (peaks == scores)


def grid_levels(pyramid: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """[P2, P3, P4, P5] -> the five maps the heads resize to their grids, as the authors' code.

    P2 is brought to P3's size and P6 is P5 taken every second cell (the authors' FPN makes P6
    by a 1x1 max-pool of stride 2 of P5) brought back to P5's size, both bilinearly: the heads
    see P2-P6 at strides 8, 8, 16, 32, 32. The authors halve P2 by ``scale_factor=0.5``; sizing
    it to P3 is the same on inputs padded to a multiple of 32 and defined on any other.
    """
    p2, p3, p4, p5 = pyramid
    p6 = p5[..., ::2, ::2]
    return [
        F.interpolate(p2, size=p3.shape[-2:], mode="bilinear", align_corners=False),
        p3,
        p4,
        p5,
        F.interpolate(p6, size=p5.shape[-2:], mode="bilinear", align_corners=False),
    ]


def centre_of_mass(masks: torch.Tensor) -> torch.Tensor:
    """(K, 2) float64 (x, y) centres of mass of bool masks (K, H, W), in pixel edges (a pixel's
    centre is at its index + 0.5); (0, 0) for an empty mask. No float copy of the masks is made."""
    height, width = masks.shape[-2:]
    rows = masks.sum(dim=2).double()  # (K, H)
    cols = masks.sum(dim=1).double()  # (K, W)
    area = rows.sum(dim=1).clamp(min=1)
    y = rows @ (torch.arange(height, dtype=torch.float64, device=masks.device) + 0.5)
    x = cols @ (torch.arange(width, dtype=torch.float64, device=masks.device) + 0.5)
    return torch.stack((x / area, y / area), dim=1)


def solov2_targets(
    target: Mapping[str, Any],
    num_classes: int,
    num_grids: Sequence[int] = NUM_GRIDS,
    scale_ranges: Sequence[Sequence[float]] = SCALE_RANGES,
    centre_scale: float = CENTRE_SCALE,
    index: int = 0,
) -> dict[str, torch.Tensor]:
    """Every grid cell's class and object for one image's instance target.

    The grids cover the target's masks (K, H, W), the padded input. An object (not a crowd, mask
    not empty) belongs to each level whose size range holds sqrt(w h) of its box (bounds
    included). On an S x S grid its positives are the cells that its centre region touches: the
    box scaled by ``centre_scale`` about the mask's centre of mass, cut to the 3 x 3 cells around
    the centre's cell (the authors' code; the paper's epsilon = 0.2). Objects are written in
    order, so a later one takes a cell from an earlier one, as in the authors' code.

    Returns ``labels`` (L,) int64, each cell's class or -1, and ``owner`` (L,) int64, each
    positive cell's row in the target (-1 elsewhere); L = sum S^2, level after level, each grid
    row-major (cell (i, j) of grid S at offset i S + j).
    """
    boxes, labels, crowd = check_target(target, num_classes, index)
    masks = instance_masks(target, index)
    height, width = masks.shape[-2:]
    centres = centre_of_mass(masks).cpu()
    boxes, labels = boxes.double().cpu(), labels.cpu()
    valid = ~crowd.cpu() & masks.flatten(1).any(dim=1).cpu()
    sides = boxes[:, 2:] - boxes[:, :2]  # (K, 2) w, h
    scales = sides.prod(dim=1).sqrt()
    half = 0.5 * centre_scale * sides
    level_labels, level_owner = [], []
    for grid, (low, high) in zip(num_grids, scale_ranges, strict=True):
        cell_labels = torch.full((grid, grid), -1, dtype=torch.long)
        cell_owner = torch.full((grid, grid), -1, dtype=torch.long)
        per_cell = torch.tensor([width / grid, height / grid], dtype=torch.float64)
        centre_cell = (centres / per_cell).floor()
        first = torch.maximum((centres - half) / per_cell, centre_cell - 1).floor().clamp(min=0)
        last = (
            torch.minimum((centres + half) / per_cell, centre_cell + 1).floor().clamp(max=grid - 1)
        )
        hit = valid & (scales >= low) & (scales <= high)
        for k in hit.nonzero()[:, 0].tolist():
            (left, top), (right, bottom) = first[k].long().tolist(), last[k].long().tolist()
            cell_labels[top : bottom + 1, left : right + 1] = labels[k]
            cell_owner[top : bottom + 1, left : right + 1] = k
        level_labels.append(cell_labels.flatten())
        level_owner.append(cell_owner.flatten())
    device = masks.device
    return {
        "labels": torch.cat(level_labels).to(device),
        "owner": torch.cat(level_owner).to(device),
    }


class SOLOv2Head(nn.Module):
    """The category and kernel branches, shared by all levels, each a tower of ``depth`` 3x3
    conv-GN-ReLU of ``channels`` and a 3x3 output convolution.

    On each level the features plus ``coordinate_channels`` are resized bilinearly to the level's
    S x S grid; the kernel branch reads all of it, the category branch the features alone (the
    authors' code). The kernel branch predicts ``kernel_channels`` weights per cell: a 1x1 kernel
    on that many mask-feature channels, no bias.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        kernel_channels: int,
        num_grids: Sequence[int] = NUM_GRIDS,
        channels: int = 512,
        depth: int = 4,
    ) -> None:
        super().__init__()
        self.num_grids = tuple(int(s) for s in num_grids)
        self.num_classes, self.kernel_channels = num_classes, kernel_channels
        self.cate_tower = tower(in_channels, channels, depth)
        self.kernel_tower = tower(in_channels + 2, channels, depth)
        self.cate_logits = nn.Conv2d(channels if depth else in_channels, num_classes, 3, padding=1)
        self.kernels = nn.Conv2d(
            channels if depth else in_channels + 2, kernel_channels, 3, padding=1
        )
        for conv in self.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.normal_(conv.weight, std=0.01)
                nn.init.zeros_(conv.bias)
        init_prior_bias(self.cate_logits, CLASS_PRIOR)

    def forward(self, levels: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """One map per grid (N, C_in, h_k, w_k) -> {"cate_logits" (N, L, num_classes),
        "kernels" (N, L, kernel_channels)}, L = sum S^2 cells, level after level, row-major."""
        if len(levels) != len(self.num_grids):
            raise ValueError(
                f"the SOLOv2 head has {len(self.num_grids)} grids {list(self.num_grids)} but got "
                f"{len(levels)} levels"
            )
        cate, kernels = [], []
        for level, grid in zip(levels, self.num_grids, strict=True):
            x = torch.cat((level, coordinate_channels(level)), dim=1)
            x = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False)
            cate.append(self.cate_logits(self.cate_tower(x[:, :-2])).flatten(2).transpose(1, 2))
            kernels.append(self.kernels(self.kernel_tower(x)).flatten(2).transpose(1, 2))
        return {"cate_logits": torch.cat(cate, dim=1), "kernels": torch.cat(kernels, dim=1)}


class SOLOv2(nn.Module):
    """Encoder -> ``FPN`` P2-P5 (``decoder``) -> ``SOLOv2Head`` on five grids + ``mask_branch``.

    ``forward`` returns raw outputs: "cate_logits" (N, L, C) and "kernels" (N, L, E) of every grid
    cell, "mask_features" (N, E, ceil(H / 4), ceil(W / 4)); ``loss`` gives the focal loss "cate"
    and the weighted dice loss "mask"; ``decode`` per-image instances (see there).
    """

    task = "instance"
    # Input pixels per cell of the masks that loss and decode use.
    mask_stride = 4

    def __init__(
        self,
        encoder: nn.Module,
        decoder: FPN,
        mask_branch: MaskBranch,
        head: SOLOv2Head,
        num_classes: int,
        scale_ranges: Sequence[Sequence[float]] = SCALE_RANGES,
        centre_scale: float = CENTRE_SCALE,
        mask_weight: float = MASK_WEIGHT,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.mask_branch, self.head = (
            encoder,
            decoder,
            mask_branch,
            head,
        )
        self.num_classes, self.num_grids = num_classes, head.num_grids
        self.scale_ranges = tuple((float(low), float(high)) for low, high in scale_ranges)
        self.centre_scale, self.mask_weight = float(centre_scale), float(mask_weight)
        if tuple(decoder.strides) != PYRAMID_STRIDES:
            raise ValueError(
                f"SOLOv2 reads a pyramid at strides {list(PYRAMID_STRIDES)}, got "
                f"{list(decoder.strides)}"
            )
        if mask_branch.strides != PYRAMID_STRIDES:
            raise ValueError(
                f"SOLOv2's mask branch must read strides {list(PYRAMID_STRIDES)} (out at "
                f"{self.mask_stride}), got {list(mask_branch.strides)}"
            )
        if head.kernel_channels != mask_branch.out_channels:
            raise ValueError(
                f"the kernel branch predicts {head.kernel_channels} weights per cell but the mask "
                f"features have {mask_branch.out_channels} channels"
            )
        if len(self.num_grids) != len(LEVEL_STRIDES) or len(self.scale_ranges) != len(
            LEVEL_STRIDES
        ):
            raise ValueError(
                f"SOLOv2 has {len(LEVEL_STRIDES)} levels (P2-P6); got grids {list(self.num_grids)} "
                f"and scale ranges {[list(r) for r in self.scale_ranges]}"
            )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) -> {"cate_logits" (N, L, C), "kernels" (N, L, E), "mask_features"
        (N, E, ceil(H / 4), ceil(W / 4))}."""
        pyramid = self.decoder(self.encoder(x))
        outputs = self.head(grid_levels(pyramid))
        # Floor-rounding encoders leave P2 a row short of the masks' grid: edge cells repeat.
        size = [(v + self.mask_stride - 1) // self.mask_stride for v in x.shape[-2:]]
        outputs["mask_features"] = fit_size(self.mask_branch(pyramid), size)
        return outputs

    def targets(self, targets: Sequence[Mapping[str, Any]]) -> list[dict[str, torch.Tensor]]:
        """``solov2_targets`` of each image of a batch."""
        return [
            solov2_targets(
                t, self.num_classes, self.num_grids, self.scale_ranges, self.centre_scale, i
            )
            for i, t in enumerate(targets)
        ]

    def loss(
        self, outputs: Mapping[str, torch.Tensor], targets: Sequence[Mapping[str, Any]]
    ) -> dict[str, torch.Tensor]:
        """{"cate": focal loss over every cell and class / (positives + 1), "mask": ``mask_weight``
        x the mean dice loss of the positive cells' masks, "loss": their sum}.

        A positive cell's mask is sigmoid(kernel . mask features) at stride 4, against its
        object's mask sampled at stride 4 (``masks_at_stride``). Without any positive in the
        batch "mask" is 0 times the mask features and kernels: every parameter stays in the graph
        with a (zero) gradient, as DDP needs.
        """
        logits, kernels = outputs["cate_logits"], outputs["kernels"]
        features = outputs["mask_features"]
        check_batch(targets, len(logits))
        made = self.targets(targets)
        labels = torch.stack([m["labels"] for m in made]).to(logits.device)
        owner = torch.stack([m["owner"] for m in made]).to(logits.device)
        positive = owner >= 0
        onehot = F.one_hot(labels.clamp(min=0), self.num_classes).to(logits) * positive[..., None]
        num_positive = int(positive.sum())
        cate = sigmoid_focal_loss(logits, onehot) / (num_positive + 1)
        losses = []
        for i, target in enumerate(targets):
            cells = positive[i].nonzero()[:, 0]
            if len(cells) == 0:
                continue
            masks = instance_masks(target, i).to(features.device)
            truth = masks_at_stride(masks, self.mask_stride)
            if truth.shape[-2:] != features.shape[-2:]:
                raise ValueError(
                    f"target {i} has masks of {tuple(masks.shape[-2:])} pixels, "
                    f"{tuple(truth.shape[-2:])} cells at stride {self.mask_stride}, but the mask "
                    f"features are {tuple(features.shape[-2:])}: masks must be the batch's size"
                )
            mask_logits = torch.einsum("pc,chw->phw", kernels[i, cells], features[i])
            losses.append(dice_loss(mask_logits.sigmoid(), truth[owner[i, cells]]))
        if losses:
            mask = torch.cat(losses).mean() * self.mask_weight
        else:
            mask = (features.sum() + kernels.sum()) * 0
        return {"loss": cate + mask, "cate": cate, "mask": mask}

    def cell_strides(self, device: torch.device | None = None) -> torch.Tensor:
        """(L,) int64: the stride of each grid cell's level (``LEVEL_STRIDES``)."""
        counts = torch.tensor([s * s for s in self.num_grids], device=device)
        return torch.tensor(LEVEL_STRIDES, device=device).repeat_interleave(counts)

    def peak_scores(self, cate_logits: torch.Tensor) -> torch.Tensor:
        """Category logits (N, L, C) -> probabilities with ``points_nms`` applied per grid."""
        probabilities = cate_logits.sigmoid()
        n, _, c = probabilities.shape
        grids = probabilities.split([s * s for s in self.num_grids], dim=1)
        peaks = [
            points_nms(g.transpose(1, 2).reshape(n, c, s, s)).flatten(2).transpose(1, 2)
            for g, s in zip(grids, self.num_grids, strict=True)
        ]
        return torch.cat(peaks, dim=1)

    @torch.no_grad()
    def decode(
        self,
        outputs: Mapping[str, torch.Tensor],
        image_size: Sequence[int],
        score_threshold: float = 0.05,
        top_k: int = 100,
        cell_threshold: float = 0.1,
        pre_nms_top_k: int = 500,
        mask_threshold: float = 0.5,
        kernel: str = "gaussian",
        sigma: float = 2.0,
    ) -> list[dict[str, torch.Tensor]]:
        """Instances per image: {"boxes" (K, 4) xyxy input pixels, "scores" (K,), "labels" (K,)
        int64, "masks" float (K, ceil(H / 4), ceil(W / 4)) mask probabilities at
        ``mask_stride``}, best first, for the batch's input size ``image_size`` (H, W).

        The authors' inference: category probabilities kept at their 2x2 peaks (``points_nms``);
        the (cell, class) pairs of probability at least ``cell_threshold`` (0.1; and at least
        ``score_threshold``, as maskness and decay only lower a score), at most
        ``pre_nms_top_k`` of them, make their masks; binary masks are the probabilities at least
        ``mask_threshold`` (0.5), a mask of no more cells than its level's stride is dropped;
        score = probability x maskness (mean probability inside the binary mask); Matrix NMS
        (``kernel``, ``sigma``) on the binary masks, same class only; the ``top_k`` best scoring
        at least ``score_threshold`` (the authors' update threshold 0.05). Boxes are
        ``masks_to_boxes`` of the masks pasted at the input's resolution (``paste_masks_chunks``
        at ``image_size``, threshold 0.5): the box of the mask the evaluation pastes.
        """
        height, width = (int(v) for v in image_size)
        size = (math.ceil(height / self.mask_stride), math.ceil(width / self.mask_stride))
        features = fit_size(outputs["mask_features"], size)
        scores = self.peak_scores(outputs["cate_logits"])
        strides = self.cell_strides(scores.device)
        threshold = max(cell_threshold, score_threshold)
        results = []
        for image_scores, kernels, image_features in zip(
            scores, outputs["kernels"], features, strict=True
        ):
            flat = image_scores.flatten()
            candidates = (flat >= threshold).nonzero()[:, 0]
            best = flat[candidates].topk(min(pre_nms_top_k, len(candidates))).indices
            chosen = candidates[best]
            cells, labels = chosen // self.num_classes, chosen % self.num_classes
            mask_logits = torch.einsum("pc,chw->phw", kernels[cells], image_features)
            probabilities = mask_logits.sigmoid()
            binary = probabilities >= mask_threshold
            area = binary.sum(dim=(1, 2))
            keep = area > strides[cells]
            probabilities, binary, area = probabilities[keep], binary[keep], area[keep]
            labels = labels[keep]
            maskness = (probabilities * binary).sum(dim=(1, 2)) / area
            score = flat[chosen][keep] * maskness
            score = matrix_nms(binary, labels, score, kernel, sigma)
            kept = (score >= score_threshold).nonzero()[:, 0]
            kept = kept[score[kept].argsort(descending=True, stable=True)[:top_k]]
            masks = probabilities[kept]
            results.append(
                {
                    "boxes": self.mask_boxes(masks, (height, width)),
                    "scores": score[kept],
                    "labels": labels[kept],
                    "masks": masks,
                }
            )
        return results

    def mask_boxes(self, masks: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
        """(K, 4) xyxy input-pixel boxes of mask probabilities (K, h, w) at ``mask_stride``,
        pasted at ``image_size`` a chunk at a time."""
        boxes = [
            masks_to_boxes(chunk)
            for chunk in paste_masks_chunks(masks, self.mask_stride, image_size)
        ]
        return torch.cat(boxes) if boxes else masks.new_zeros(0, 4)


@MODELS.register("solov2")
def solov2(
    num_classes: int,
    encoder: str | nn.Module | None = None,
    encoder_weights: WeightsSource | None = None,
    encoder_options: Mapping[str, Any] | None = None,
    fpn_channels: int = 256,
    head_channels: int = 512,
    head_depth: int = 4,
    mask_channels: int = 256,
    mask_branch_channels: int = 128,
    num_grids: Sequence[int] = NUM_GRIDS,
    scale_ranges: Sequence[Sequence[float]] = SCALE_RANGES,
    centre_scale: float = CENTRE_SCALE,
    mask_weight: float = MASK_WEIGHT,
) -> SOLOv2:
    """SOLOv2 on any registered encoder with features at reductions 4, 8, 16 and 32.

    The default encoder is ``"resnet50"``, the paper's. ``fpn_channels`` is the pyramid's width
    (256); ``head_channels`` and ``head_depth`` the category and kernel towers (512, 4);
    ``mask_channels`` E, the mask features' width and each dynamic kernel's length (256);
    ``mask_branch_channels`` the mask branch's inner width (128); ``num_grids`` and
    ``scale_ranges`` the grid and the object sizes (sqrt(w h) of the box) of P2-P6; ``centre_scale``
    the centre region (0.2); ``mask_weight`` the dice loss's weight (3). The defaults are the
    paper's SOLOv2 R50 (the authors' ``solov2_r50_fpn_8gpu_1x``).

    Differs from the authors' code: P2 is resized to P3's size (not halved by a scale factor:
    the same on inputs padded to a multiple of 32); the towers' convolutions keep a bias before
    GroupNorm (fcnlab's shared ``tower``, 2 x 4 x 512 parameters more); the mask branch's weights
    start as Caffe2's XavierFill instead of N(0, 0.01) (every one is followed by GroupNorm);
    the centre of mass is taken at pixel centres (index + 0.5) and grids cover the padded input,
    the mask targets are sampled at stride 4 at pixel offset 2 (CondInst's ``masks_at_stride``,
    not a bilinear ``imrescale``); inference takes the ``pre_nms_top_k`` best cells before
    computing masks, where the authors compute every candidate's mask and keep the 500 best after
    maskness, and thresholds masks at >= 0.5 (the authors: > 0.5); crowd objects are left out of
    the targets (as the authors' data loading does).
    """
    built = make_encoder(encoder, "resnet50", encoder_weights, encoder_options)
    decoder = FPN(
        built.out_channels, built.reductions, PYRAMID_STRIDES, channels=fpn_channels, extra=0
    )
    mask_branch = MaskBranch(
        fpn_channels,
        PYRAMID_STRIDES,
        channels=mask_branch_channels,
        out_channels=mask_channels,
        depth=0,
        norm=group_norm,
        upsample_stacks=True,
        coordinates=True,
        output_norm=True,
    )
    head = SOLOv2Head(
        fpn_channels, num_classes, mask_channels, num_grids, head_channels, head_depth
    )
    return SOLOv2(
        built, decoder, mask_branch, head, num_classes, scale_ranges, centre_scale, mask_weight
    )
