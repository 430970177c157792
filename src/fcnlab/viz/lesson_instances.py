"""Section 8 of the lesson: from semantic to instance segmentation, with fcnlab's own data,
dynamic mask head and Matrix NMS.

One image of the Shapes instance view holds two disks that touch and two triangles that touch:
the class map has one region per class, the instances are four masks. A hand-built CondInst
head (``fcnlab.models.instance.dynamic``) picks each disk out of one shared mask-feature map by
its relative coordinates; SOLOv2's Matrix NMS (``fcnlab.ops.matrix_nms``) decays a shifted
copy of one disk and leaves the touching disk and a copy of another class alone. Every number is
computed here; the figures draw these results and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from fcnlab.data.shapes import SHAPES_PALETTE, Shapes, build_shapes_instances
from fcnlab.models.instance.condinst import SIZES_OF_INTEREST, CondInst
from fcnlab.models.instance.dynamic import (
    dynamic_head_inputs,
    dynamic_mask_head,
    dynamic_params_count,
    split_dynamic_params,
)
from fcnlab.models.instance.targets import masks_at_stride
from fcnlab.ops import mask_iou, matrix_nms, paste_masks
from fcnlab.viz.colours import colorize
from fcnlab.viz.instances import draw_instances, mask_outline
from fcnlab.viz.lesson_figures import draw_grid

IMAGE_SIZE = 128
# Validation image of the Shapes instance view (``build_shapes_instances``) whose two disks
# touch (one region of the class map, two instances), as do its two triangles.
TOUCHING_INDEX = 42
TOUCHING_KIND = "disk"
# The hand-built head: CondInst's mask features are at stride 4 and relative coordinates are
# divided by the size of interest of the level (P3's 64 pixels for objects this size).
MASK_STRIDE = CondInst.mask_stride
COORDINATE_SCALE = SIZES_OF_INTEREST[0]
DIRECTIONS = 8  # first-layer units: projections on 8 directions 45 degrees apart
HEAD_LAYERS = 2
# Matrix NMS: the first disk, its copy shifted away from the second disk, the second disk and
# the same copy classed as a triangle, scored in that order.
NMS_SCORES = (0.9, 0.8, 0.7, 0.6)
COPY_SHIFT = 8  # pixels
NMS_SIGMA = 2.0


def lesson_shapes(index: int = TOUCHING_INDEX, size: int = IMAGE_SIZE) -> Shapes:
    """The Shapes instance view (validation split, ``touching`` at its default) with
    ``index + 1`` images of ``size`` pixels a side."""
    return build_shapes_instances(split="val", num_images=index + 1, size=size)


def region_map(mask: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The 4-connected regions of a bool mask (H, W): labels (H, W) int64 (0 outside the mask,
    1..n, numbered in raster order of each region's first pixel) and their number n.

    Every pixel starts with its own number and takes the largest of its 4-neighbours' inside the
    mask until nothing changes: each region ends up holding one number.
    """
    if mask.dim() != 2:
        raise ValueError(f"region_map needs an (H, W) mask, got shape {tuple(mask.shape)}")
    inside = mask.bool()
    height, width = inside.shape
    labels = torch.where(inside, torch.arange(1, height * width + 1).view(height, width), 0)
    while True:
        padded = F.pad(labels, (1, 1, 1, 1))
        neighbours = torch.stack(
            (
                labels,
                padded[:-2, 1:-1],
                padded[2:, 1:-1],
                padded[1:-1, :-2],
                padded[1:-1, 2:],
            )
        )
        grown = torch.where(inside, neighbours.max(dim=0).values, 0)
        if torch.equal(grown, labels):
            break
        labels = grown
    numbers = labels[inside]
    if numbers.numel() == 0:
        return labels, 0
    # Renumber 1..n in raster order of the regions' first pixels.
    first = {}
    for number in numbers.tolist():
        first.setdefault(number, len(first) + 1)
    lookup = torch.zeros(height * width + 1, dtype=torch.int64)
    lookup[torch.tensor(list(first))] = torch.tensor(list(first.values()))
    return lookup[labels], len(first)


def contact_pairs(a: torch.Tensor, b: torch.Tensor) -> int:
    """Pairs of side-by-side pixels (4-neighbours) with one pixel in mask ``a`` (H, W) and the
    other in mask ``b``."""
    a, b = a.bool(), b.bool()
    across = (a[:, :-1] & b[:, 1:]) | (b[:, :-1] & a[:, 1:])
    down = (a[:-1] & b[1:]) | (b[:-1] & a[1:])
    return int(across.sum() + down.sum())


@dataclass(frozen=True)
class SemanticInstanceExample:
    """One image as a class map and as instances, with the regions of each class counted."""

    index: int
    image: torch.Tensor  # (3, H, W) in [0, 1]
    class_map: torch.Tensor  # (H, W) int64: 0 background, 1.. the shape kinds
    masks: torch.Tensor  # (K, H, W) bool, one per visible shape
    labels: torch.Tensor  # (K,) int64, 0-based shape kinds
    kinds: tuple[str, ...]
    regions: dict[str, int]  # kind -> 4-connected regions of the class map
    instances: dict[str, int]  # kind -> instances
    region_masks: torch.Tensor  # (R, H, W) bool: the class map's regions
    region_labels: torch.Tensor  # (R,) int64: their kinds
    pair: tuple[int, int]  # the touching instances of ``kind``
    kind: str
    contact: int  # 4-neighbour pixel pairs between the pair's masks


def semantic_instance_example(
    index: int = TOUCHING_INDEX, kind: str = TOUCHING_KIND
) -> SemanticInstanceExample:
    """Shapes instance-view image ``index`` as a class map and as instances.

    Raises a ValueError unless exactly two instances are of ``kind`` and they touch: one
    4-connected region of the class map, two masks side by side.
    """
    dataset = lesson_shapes(index)
    image, target = dataset.load_instances(index)
    _, class_map = dataset.load(index)
    masks, labels = target["masks"], target["labels"]
    kinds = dataset.kinds
    if kind not in kinds:
        raise ValueError(f"kind {kind!r} is not a Shapes kind; expected one of {kinds}")
    regions, instances, region_masks, region_labels = {}, {}, [], []
    for label in sorted(set(labels.tolist())):
        region_labels_map, count = region_map(class_map == label + 1)
        regions[kinds[label]] = count
        instances[kinds[label]] = int((labels == label).sum())
        region_masks += [region_labels_map == number for number in range(1, count + 1)]
        region_labels += [label] * count
    pair = tuple((labels == kinds.index(kind)).nonzero().flatten().tolist())
    contact = contact_pairs(masks[pair[0]], masks[pair[-1]]) if len(pair) == 2 else 0
    if len(pair) != 2 or regions[kind] != 1 or contact == 0:
        raise ValueError(
            f"Shapes instance-view val image {index} has {len(pair)} {kind} instance(s) in "
            f"{regions.get(kind, 0)} region(s) of the class map with {contact} touching pixel "
            f"pairs; the lesson needs two touching {kind}s (one region, two instances)"
        )
    return SemanticInstanceExample(
        index,
        image,
        class_map,
        masks,
        labels,
        kinds,
        regions,
        instances,
        torch.stack(region_masks),
        torch.tensor(region_labels, dtype=torch.int64),
        (pair[0], pair[1]),
        kind,
        contact,
    )


def disk_kernel(
    radius: float, scale: float = COORDINATE_SCALE, directions: int = DIRECTIONS
) -> torch.Tensor:
    """Parameters (P,) of a two-layer dynamic mask head on (x, y, feature) inputs whose mask
    logit is about ``radius`` minus the pixel's distance from the instance, where the feature
    is 1, and far below 0 where it is 0.

    Layer 1, unit k: ``relu(u_k . (x, y) + 1 - feature)``, u_k the unit vector at ``k * 2 pi /
    directions``: on the feature the units sum to ``directions / pi`` times the distance on
    average over the directions (0.95 to 1.03 times it for 8 directions, a regular octagon),
    off it each adds at least 1. Layer 2: ``radius - (scale pi / directions)`` times their sum,
    so the logit is in pixels (the relative coordinates are divided by ``scale``).
    """
    angles = torch.arange(directions, dtype=torch.float32) * (2 * math.pi / directions)
    first = torch.stack((angles.cos(), angles.sin(), -torch.ones(directions)), dim=1)
    # cos(pi / 2) and friends come out as +-4e-8 in float32: exact zeros read better.
    first = torch.where(first.abs() < 1e-6, 0.0, first)
    second = torch.full((1, directions), -scale * math.pi / directions)
    return torch.cat(
        (first.flatten(), second.flatten(), torch.ones(directions), torch.tensor([radius]))
    )


@dataclass(frozen=True)
class DynamicKernelExample:
    """Two instances' heads on one shared mask-feature map, and the masks they give."""

    mask_features: torch.Tensor  # (1, h, w): the class map's ``kind`` pixels at MASK_STRIDE
    locations: torch.Tensor  # (2, 2): each instance's (x, y) in input pixels
    radii: torch.Tensor  # (2,): each instance's radius in pixels (from its area)
    inputs: torch.Tensor  # (2, 3, h, w): relative x, relative y, the mask features
    params: torch.Tensor  # (2, P): each instance's head
    probabilities: torch.Tensor  # (2, h, w): sigmoid of the heads' logits
    masks: torch.Tensor  # (2, H, W) bool: pasted at the image's size
    objects: torch.Tensor  # (2, H, W) bool: the two instances' true masks
    iou: torch.Tensor  # (2, 2): mask_iou(masks, objects)
    convolution_gap: float  # max |dynamic_mask_head - the heads as F.conv2d layers|


def heads_as_convolutions(inputs: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """The lesson's heads as 1x1 ``F.conv2d`` layers, one instance at a time: logits (N, 1, h,
    w) from inputs (N, C, h, w) and parameters (N, P), for checking the batched version."""
    weights, biases = split_dynamic_params(params, inputs.shape[1], DIRECTIONS, HEAD_LAYERS)
    logits = []
    for n in range(len(inputs)):
        x = inputs[n : n + 1]
        for k, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            x = F.conv2d(x, weight[n, :, :, None, None], bias[n])
            x = F.relu(x) if k < HEAD_LAYERS - 1 else x
        logits.append(x)
    return torch.cat(logits)


def dynamic_kernel_example(example: SemanticInstanceExample | None = None) -> DynamicKernelExample:
    """CondInst's dynamic mask head picking each touching instance out of shared features.

    The mask features are one channel, the class map's pixels of the pair's kind sampled at
    ``MASK_STRIDE`` as CondInst samples its targets (``masks_at_stride``). Each instance's
    location is its centroid and its head is :func:`disk_kernel` with its radius: the heads
    differ in one number, and each sees the features from its own location through the
    relative coordinates (``dynamic_head_inputs``). Probabilities are pasted to the image's
    size and thresholded at 0.5 (``paste_masks``), as CondInst's masks are.
    """
    example = example or semantic_instance_example()
    label = example.kinds.index(example.kind) + 1
    features = masks_at_stride((example.class_map == label)[None], MASK_STRIDE)
    objects = example.masks[list(example.pair)]
    locations, radii = [], []
    for mask in objects:
        rows, cols = mask.nonzero(as_tuple=True)
        # Centroid in input pixels (pixel k spans [k, k + 1)).
        locations.append([cols.double().mean() + 0.5, rows.double().mean() + 0.5])
        radii.append(math.sqrt(float(mask.sum()) / math.pi))
    locations_t = torch.tensor(locations, dtype=torch.float32)
    inputs = dynamic_head_inputs(
        features[None],
        torch.zeros(2, dtype=torch.int64),
        locations_t,
        torch.full((2,), COORDINATE_SCALE),
        MASK_STRIDE,
    )
    params = torch.stack([disk_kernel(radius) for radius in radii])
    logits = dynamic_mask_head(inputs, params, DIRECTIONS, HEAD_LAYERS)
    # Compared in float64: the logits reach -200, where float32 rounding alone is 1e-5.
    gap = float(
        (
            dynamic_mask_head(inputs.double(), params.double(), DIRECTIONS, HEAD_LAYERS)
            - heads_as_convolutions(inputs.double(), params.double())
        )
        .abs()
        .max()
    )
    probabilities = logits[:, 0].sigmoid()
    masks = paste_masks(probabilities, MASK_STRIDE, example.class_map.shape)
    return DynamicKernelExample(
        features,
        locations_t,
        torch.tensor(radii),
        inputs,
        params,
        probabilities,
        masks,
        objects,
        mask_iou(masks, objects),
        gap,
    )


def shift_mask(mask: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``mask`` (H, W) moved ``dx`` pixels right and ``dy`` down; what leaves the image is
    lost, what enters is empty."""
    height, width = mask.shape
    shifted = torch.zeros_like(mask)
    shifted[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = mask[
        max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)
    ]
    return shifted


@dataclass(frozen=True)
class MatrixNMSExample:
    """Four candidate masks, their IoUs, and their scores before and after Matrix NMS."""

    image: torch.Tensor  # (3, H, W)
    names: tuple[str, ...]  # what each candidate is
    masks: torch.Tensor  # (4, H, W) bool
    labels: torch.Tensor  # (4,) int64, 0-based shape kinds
    kinds: tuple[str, ...]
    scores: torch.Tensor  # (4,)
    iou: torch.Tensor  # (4, 4): mask_iou of every pair
    decayed: dict[str, torch.Tensor]  # kernel -> (4,) scores after matrix_nms
    sigma: float


def matrix_nms_example(example: SemanticInstanceExample | None = None) -> MatrixNMSExample:
    """Matrix NMS on the touching pair: the first instance, a copy of it shifted ``COPY_SHIFT``
    pixels away from the second, the second, and the copy again classed as another kind (one
    the image holds, if any), scored ``NMS_SCORES``; ``matrix_nms`` with both kernels."""
    example = example or semantic_instance_example()
    first, second = (example.masks[k] for k in example.pair)
    away = _centroid(first) - _centroid(second)
    dx, dy = (round(float(v)) for v in away / away.norm() * COPY_SHIFT)
    copy = shift_mask(first, dx, dy)
    label = int(example.labels[example.pair[0]])
    others = [k for k in example.labels.tolist() if k != label]
    other = others[0] if others else (label + 1) % len(example.kinds)
    masks = torch.stack((first, copy, second, copy))
    labels = torch.tensor([label, label, label, other], dtype=torch.int64)
    scores = torch.tensor(NMS_SCORES)
    kind, other_kind = example.kinds[label], example.kinds[other]
    names = (
        f"{kind} A",
        f"A moved ({dx:+d}, {dy:+d})",
        f"{kind} B, touching A",
        f"the moved A as {other_kind}",
    )
    decayed = {
        kernel: matrix_nms(masks, labels, scores, kernel=kernel, sigma=NMS_SIGMA)
        for kernel in ("gaussian", "linear")
    }
    return MatrixNMSExample(
        example.image,
        names,
        masks,
        labels,
        example.kinds,
        scores,
        mask_iou(masks, masks),
        decayed,
        NMS_SIGMA,
    )


def _centroid(mask: torch.Tensor) -> torch.Tensor:
    rows, cols = mask.nonzero(as_tuple=True)
    return torch.stack((cols.double().mean(), rows.double().mean()))


# --- facts ------------------------------------------------------------------------------------


def semantic_instance_facts() -> list[str]:
    """The numbers section 8 checks on the page: regions against instances, the dynamic heads'
    masks, and Matrix NMS's decay."""
    example = semantic_instance_example()
    regions = ", ".join(f"'{kind}' {count}" for kind, count in example.regions.items())
    instances = ", ".join(f"'{kind}' {count}" for kind, count in example.instances.items())
    facts = [
        f"val image {example.index}: regions of each class in the class map: {regions}; "
        f"instances: {instances}",
        f"the two {example.kind}s share {example.contact} side-by-side pixel pairs",
    ]
    dynamic = dynamic_kernel_example(example)
    for k in range(2):
        x, y = dynamic.locations[k].tolist()
        facts.append(
            f"head {k + 1} (location ({x:.1f}, {y:.1f}), radius {float(dynamic.radii[k]):.1f}): "
            f"mask IoU {float(dynamic.iou[k, k]):.2f} with its {example.kind}, "
            f"{float(dynamic.iou[k, 1 - k]):.2f} with the other"
        )
    differ = (dynamic.params[0] != dynamic.params[1]).nonzero().flatten().tolist()
    facts += [
        f"the heads' {dynamic.params.shape[1]} parameters differ at index {differ} only "
        "(the last bias, each radius)",
        f"max |dynamic_mask_head - the heads as 1x1 F.conv2d layers| = "
        f"{dynamic.convolution_gap:.1e}",
    ]
    nms = matrix_nms_example(example)
    before = ", ".join(f"{v:.2f}" for v in nms.scores.tolist())
    facts.append(
        f"mask IoU: A and moved A {float(nms.iou[0, 1]):.2f}, A and B {float(nms.iou[0, 2]):.2f}"
    )
    for kernel, scores in nms.decayed.items():
        after = ", ".join(f"{v:.2f}" for v in scores.tolist())
        facts.append(f"matrix_nms {kernel}: {before} -> {after}")
    iou, score = float(nms.iou[0, 1]), float(nms.scores[1])
    by_hand = {
        "gaussian": score * math.exp(-nms.sigma * iou**2),
        "linear": score * (1 - iou),
    }
    gap = max(abs(float(nms.decayed[k][1]) - v) for k, v in by_hand.items())
    facts.append(
        f"moved A by hand: {score:.2f} x exp(-{nms.sigma:g} x {iou:.2f}^2) = "
        f"{by_hand['gaussian']:.2f}, {score:.2f} x (1 - {iou:.2f}) = {by_hand['linear']:.2f} "
        f"(max difference from matrix_nms {gap:.1e})"
    )
    return facts


# --- figures ----------------------------------------------------------------------------------


def _picture_axis(ax: Axes, picture: np.ndarray, title: str) -> None:
    ax.imshow(picture, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_semantic_vs_instances() -> Figure:
    """Section 8a: the image, its class map, the class map's regions and the instances."""
    example = semantic_instance_example()
    palette = SHAPES_PALETTE[: len(example.kinds) + 1]
    scale = 2
    fig = Figure(figsize=(16, 4.6), layout="constrained")
    axes = fig.subplots(1, 4)
    image = example.image.permute(1, 2, 0).numpy()
    _picture_axis(axes[0], image, f"Shapes instance view, val image {example.index}")
    _picture_axis(axes[1], colorize(example.class_map, palette), "class map (semantic)")
    shown = sorted(set(example.labels.tolist()))
    axes[1].legend(
        handles=[Patch(color=palette[k + 1] / 255, label=example.kinds[k]) for k in shown],
        loc="lower right",
        fontsize=8,
    )
    total_regions = len(example.region_masks)
    _picture_axis(
        axes[2],
        draw_instances(
            example.image,
            example.region_masks,
            example.region_labels,
            class_names=example.kinds,
            scale=scale,
        ),
        f"connected regions of the class map: {total_regions}",
    )
    _picture_axis(
        axes[3],
        draw_instances(
            example.image, example.masks, example.labels, class_names=example.kinds, scale=scale
        ),
        f"instances: {len(example.masks)} masks",
    )
    fig.suptitle(
        f"The two {example.kind}s touch: one region of the class map, two instances "
        f"({example.contact} side-by-side pixel pairs)"
    )
    return fig


def plot_dynamic_kernel() -> Figure:
    """Section 8b: the shared mask features, each instance's relative coordinates, the two
    heads' numbers and the masks they give."""
    semantic = semantic_instance_example()
    example = dynamic_kernel_example(semantic)
    fig = Figure(figsize=(16, 10.5), layout="constrained")
    grid = fig.add_gridspec(3, 5, height_ratios=[1, 1, 0.75])
    features = fig.add_subplot(grid[0:2, 0])
    features.imshow(example.mask_features[0].numpy(), cmap="gray", interpolation="nearest")
    h, w = example.mask_features.shape[-2:]
    features.set_title(
        f"mask features, shared:\n'{semantic.kind}' pixels at stride {MASK_STRIDE} ({h}x{w})",
        fontsize=10,
    )
    features.set_xticks([])
    features.set_yticks([])
    limit = float(example.inputs[:, :2].abs().max())
    for k in range(2):
        cell = (example.locations[k] - MASK_STRIDE // 2) / MASK_STRIDE
        for c, name in enumerate(("x", "y")):
            ax = fig.add_subplot(grid[k, 1 + c])
            shown = ax.imshow(
                example.inputs[k, c].numpy(),
                cmap="RdBu_r",
                vmin=-limit,
                vmax=limit,
                interpolation="nearest",
            )
            ax.plot(*cell.tolist(), marker="+", color="black", markersize=12, mew=2)
            ax.set_title(f"head {k + 1}: relative {name} (/ {COORDINATE_SCALE:g} px)", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(shown, ax=ax, shrink=0.8)
        ax = fig.add_subplot(grid[k, 3])
        ax.imshow(
            example.probabilities[k].numpy(), cmap="magma", vmin=0, vmax=1, interpolation="nearest"
        )
        ax.set_title(f"head {k + 1}: mask probability\nat stride {MASK_STRIDE}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        picture = draw_instances(
            semantic.image,
            example.masks[k : k + 1],
            torch.tensor([semantic.kinds.index(semantic.kind)]),
            class_names=semantic.kinds,
            scale=2,
        )
        truth = np.repeat(np.repeat(example.objects[k].numpy(), 2, axis=0), 2, axis=1)
        picture[mask_outline(truth, 2)] = (255, 255, 255)
        _picture_axis(
            fig.add_subplot(grid[k, 4]),
            picture,
            f"head {k + 1}: pasted mask\n(white: its object)\nIoU {float(example.iou[k, k]):.2f}"
            f" (with the other {float(example.iou[k, 1 - k]):.2f})",
        )
    weights, biases = split_dynamic_params(example.params, 3, DIRECTIONS, HEAD_LAYERS)
    first = torch.cat((weights[0][0], biases[0][0][:, None]), dim=1).T  # (4, 8): rows x, y, f, b
    ax = fig.add_subplot(grid[2, 0:3])
    draw_grid(ax, first, "layer 1 (both heads): 8 units", cmap="RdBu_r", vmin=-1.5, vmax=1.5)
    ax.set_yticks(range(4), labels=["x", "y", "feature", "bias"])
    ax.tick_params(labelleft=True)
    second = torch.cat((weights[1][:, 0], biases[1]), dim=1)  # (2, 9)
    ax = fig.add_subplot(grid[2, 3:5])
    draw_grid(ax, second, "layer 2: 8 weights and the bias (radius)", cmap="Oranges", fontsize=8)
    ax.set_yticks(range(2), labels=["head 1", "head 2"])
    ax.tick_params(labelleft=True)
    fig.suptitle(
        f"One kernel per instance ({dynamic_params_count(3, DIRECTIONS, HEAD_LAYERS)} numbers, "
        "two 1x1 layers) on the shared features plus relative coordinates picks out one object"
    )
    return fig


def plot_matrix_nms() -> Figure:
    """Section 8c: four candidate masks, their IoUs, and their scores before and after Matrix
    NMS with the gaussian and the linear kernel."""
    example = matrix_nms_example()
    count = len(example.masks)
    fig = Figure(figsize=(16, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, count, height_ratios=[1, 1])
    for k in range(count):
        picture = draw_instances(
            example.image,
            example.masks[k : k + 1],
            example.labels[k : k + 1],
            example.scores[k : k + 1],
            class_names=example.kinds,
            scale=2,
        )
        _picture_axis(fig.add_subplot(grid[0, k]), picture, f"{k + 1}: {example.names[k]}")
    same_class = example.labels[:, None] == example.labels[None, :]
    # Candidates are in score order, so row i above the diagonal is i against lower-scored ones.
    pairs = same_class.triu(diagonal=1)
    ax = fig.add_subplot(grid[1, 0])
    draw_grid(
        ax,
        example.iou,
        "mask IoU; framed: same-class pairs,\nrow scored above column",
        highlight=pairs,
    )
    ax.set_xticks(range(count), labels=[str(k + 1) for k in range(count)])
    ax.set_yticks(range(count), labels=[str(k + 1) for k in range(count)])
    ax.tick_params(labelleft=True, labelbottom=True)
    table = torch.stack((example.scores, *example.decayed.values()), dim=1)
    ax = fig.add_subplot(grid[1, 1])
    draw_grid(ax, table, "scores", cmap="Greens", vmin=0, vmax=1)
    ax.set_xticks(range(3), labels=["before", "gaussian", "linear"])
    ax.set_yticks(range(count), labels=[str(k + 1) for k in range(count)])
    ax.tick_params(labelleft=True, labelbottom=True)
    ax = fig.add_subplot(grid[1, 2:])
    positions = np.arange(count)
    for offset, (name, values) in zip(
        (-0.27, 0.0, 0.27), (("before", example.scores), *example.decayed.items()), strict=True
    ):
        ax.bar(positions + offset, values.numpy(), width=0.27, label=name)
    ax.set_xticks(positions, labels=[f"{k + 1}" for k in range(count)])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.legend(fontsize=9)
    ax.set_title(f"Matrix NMS (sigma {example.sigma:g} for the gaussian)", fontsize=10)
    fig.suptitle(
        "Matrix NMS decays a score by its overlap with higher-scored masks of the same class: "
        "the moved copy falls, the touching neighbour and the other class do not"
    )
    return fig
