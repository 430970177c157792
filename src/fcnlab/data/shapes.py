"""``Shapes``: a procedurally generated segmentation set that needs no files and no download.

Each image holds one to a few shapes (disk, square, triangle, ring, bar, cross) of random size,
rotation, colour and texture on a textured background, with mild noise; later shapes occlude
earlier ones, in the mask as in the image. Colours are drawn independently of the class, so a model
has to learn shape, not colour. With ``touching > 0`` a new shape may copy the class of an earlier
one and be placed against it, overlapping it a little or sharing its outline: one region in the
class map, two instances (the instance view's default). Sample ``i`` is generated from a generator
seeded by ``(seed, split, i)``: random access, repeated epochs and DataLoader workers all see the
same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from fcnlab.data.registry import DATASETS
from fcnlab.data.targets import Target, make_instance_target, make_target
from fcnlab.ops.masks import masks_to_boxes

SHAPE_KINDS = ("disk", "square", "triangle", "ring", "bar", "cross")
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class ShapesTarget:
    """What ``Shapes(target=...)`` gives with each image: samples of which task, and whether
    class 0 is the background (class maps) or the first shape kind (boxes)."""

    task: str
    background: bool


TARGETS = {
    "mask": ShapesTarget("segmentation", background=True),
    "dominant": ShapesTarget("classification", background=True),
    "boxes": ShapesTarget("detection", background=False),
    "instances": ShapesTarget("instance", background=False),
}
# Background black, then one well-separated colour per shape kind (for drawing masks only).
SHAPES_PALETTE = np.array(
    [
        (0, 0, 0),
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
    ],
    dtype=np.uint8,
)
# A new shape is placed again when it would hide more than this share of an earlier one.
MAX_OCCLUDED = 0.25
# Mean absolute RGB difference a shape keeps from what it is painted over, so edges stay visible.
MIN_CONTRAST = 0.25
PLACEMENT_TRIES = 20
# Largest colour difference within the background texture and within a shape's texture: weaker
# than MIN_CONTRAST, so that outlines, not texture edges, are what stands out.
BACKGROUND_CONTRAST = 0.2
SHAPE_TEXTURE = 0.12
# The instance view's share of shapes placed against an earlier shape of their class.
INSTANCE_TOUCHING = 0.5
# How finely a touching shape's distance from its neighbour is searched, in pixels.
TOUCH_STEP = 0.25


def shape_mask(
    kind: str,
    height: int,
    width: int,
    center: tuple[float, float],
    radius: float,
    angle: float = 0.0,
    aspect: float = 0.25,
) -> np.ndarray:
    """Boolean (H, W) mask of one shape, sampled at pixel centres.

    ``center`` is (x, y) in pixels, ``radius`` the half-extent, ``angle`` the rotation in radians.
    disk: radius ``r``; ring: radii ``aspect*r`` .. ``r`` (``aspect`` is the inner-radius ratio);
    square: half-side ``0.85 r``; triangle: equilateral with circumradius ``1.15 r``; bar: half
    sizes ``r`` x ``aspect*r``; cross: two such bars at right angles.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    dx, dy = x - center[0], y - center[1]
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    if kind == "disk":
        return u * u + v * v <= radius * radius
    if kind == "ring":
        d2 = u * u + v * v
        return (d2 <= radius * radius) & (d2 >= (aspect * radius) ** 2)
    if kind == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85 * radius
    if kind == "triangle":
        inradius = 1.15 * radius / 2
        normals = (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3)
        inside = np.ones((height, width), dtype=bool)
        for a in normals:
            inside &= u * np.cos(a) + v * np.sin(a) <= inradius
        return inside
    if kind == "bar":
        return (np.abs(u) <= radius) & (np.abs(v) <= aspect * radius)
    if kind == "cross":
        arm = aspect * radius
        return ((np.abs(u) <= radius) & (np.abs(v) <= arm)) | (
            (np.abs(u) <= arm) & (np.abs(v) <= radius)
        )
    raise ValueError(f"unknown shape kind {kind!r}; expected one of {', '.join(SHAPE_KINDS)}")


def dominant_class(mask: torch.Tensor, ignore_index: int = 255) -> int:
    """The class covering the most pixels of ``mask`` (H, W), background (0) and ignore excluded.

    Ties go to the smaller class index; a mask without any shape pixel gives 0.
    """
    labels = mask[(mask != 0) & (mask != ignore_index)]
    if labels.numel() == 0:
        return 0
    return int(torch.bincount(labels).argmax())


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """(H, W) noise in [0, 1]: a ``cells`` x ``cells`` random grid upsampled bilinearly."""
    grid = torch.from_numpy(rng.random((1, 1, cells, cells), dtype=np.float32))
    return F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()


def _pattern(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W) texture in [0, 1]: a ramp, stripes, blotches or a checkerboard, at random."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    phi = rng.uniform(0, np.pi)
    t = x * np.cos(phi) + y * np.sin(phi)
    kind = rng.integers(4)
    if kind == 0:
        return (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    if kind == 1:
        return 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 8) * t + rng.uniform(0, 2 * np.pi))
    if kind == 2:
        return _smooth_noise(rng, height, width, int(rng.integers(3, 8)))
    cell = rng.uniform(0.08, 0.2)
    return ((np.floor(x / cell) + np.floor(y / cell)) % 2).astype(np.float32)


def _textured(rng: np.random.Generator, height: int, width: int, contrast: float) -> np.ndarray:
    """(H, W, 3) image: two random colours at most ``contrast`` apart, mixed by a texture."""
    base = rng.uniform(0, 1, 3).astype(np.float32)
    other = np.clip(base + rng.uniform(-contrast, contrast, 3), 0, 1).astype(np.float32)
    t = _pattern(rng, height, width)[..., None]
    return (base * (1 - t) + other * t).astype(np.float32)


class Shapes(Dataset):
    """Procedurally generated shapes: ``ds[i]`` is ``(image, mask)``, ``(image, label)`` or
    ``(image, target)``.

    image: float32 (3, H, W) in [0, 1]; mask: int64 (H, W) with 0 = background and 1.. the shape
    kinds in ``SHAPE_KINDS`` order; ``target="dominant"`` returns instead the class covering the
    most pixels (``dominant_class``), for image-level classification; ``target="boxes"`` returns
    a detection target (:mod:`fcnlab.data.targets`) of the visible shapes, labels 0-based over
    the shape kinds (no background), which the joint transforms (:mod:`fcnlab.data.transforms`)
    move with the image; ``target="instances"`` the same with each shape's visible pixels as
    ``masks`` (K, H, W) and the boxes derived from them. ``num_classes`` is always the data
    set's ``num_classes``: with masks it counts the background, with boxes and instances only
    the kinds (so 6 means five kinds with masks, all six with boxes). ``size`` is an int or
    (H, W); ``scale`` bounds the shape radius as a fraction of the smaller side. Difficulty
    knobs: ``shapes_per_image``, ``scale``, ``texture`` (strength of the background and shape
    textures, 0 = flat colours), ``noise`` (Gaussian standard deviation) and ``touching`` (the
    probability that a shape after the first copies the class of an earlier one and is placed
    against it, so that touching objects of one class are common; 0, the default, draws exactly
    the images it always drew). ``cache=True`` keeps every rendered sample in memory (per
    process), for many epochs over a small set.
    """

    ignore_index = 255

    def __init__(
        self,
        num_images: int = 1000,
        size: int | tuple[int, int] = 128,
        seed: int = 0,
        num_classes: int = 6,
        split: str = "train",
        target: str = "mask",
        transforms: Callable[..., Any] | None = None,
        shapes_per_image: tuple[int, int] = (1, 4),
        scale: tuple[float, float] = (0.15, 0.3),
        texture: float = 1.0,
        noise: float = 0.03,
        touching: float = 0.0,
        cache: bool = False,
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"Shapes target {target!r}: expected one of {', '.join(TARGETS)}")
        background = int(TARGETS[target].background)
        if not 1 + background <= num_classes <= len(SHAPE_KINDS) + background:
            counted = "" if background == 0 else "background + "
            raise ValueError(
                f"Shapes num_classes={num_classes} with target={target!r}: expected "
                f"{1 + background}..{len(SHAPE_KINDS) + background} "
                f"({counted}up to {len(SHAPE_KINDS)} shape kinds)"
            )
        if split not in SPLIT_STREAMS:
            raise ValueError(f"Shapes split {split!r}: expected one of {', '.join(SPLIT_STREAMS)}")
        if not 1 <= shapes_per_image[0] <= shapes_per_image[1]:
            raise ValueError(f"Shapes shapes_per_image={shapes_per_image}: expected 1 <= lo <= hi")
        if not 0 < scale[0] <= scale[1] <= 0.5:
            raise ValueError(f"Shapes scale={scale}: expected 0 < lo <= hi <= 0.5")
        if not 0 <= touching <= 1:
            raise ValueError(f"Shapes touching={touching}: expected a probability in [0, 1]")
        self.num_images = num_images
        self.height, self.width = (size, size) if isinstance(size, int) else size
        self.seed = seed
        self.split = split
        self.target = target
        self.transforms = transforms
        self.shapes_per_image = shapes_per_image
        self.scale = scale
        self.texture = texture
        self.noise = noise
        self.touching = touching
        self.kinds = SHAPE_KINDS[: num_classes - background]
        self.classes = ("background", *self.kinds) if background else self.kinds
        # palette[c] is the colour of class c, so boxes drop the background's black
        self.palette = SHAPES_PALETTE[1 - background : len(self.kinds) + 1].copy()
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, list[int]]] | None = (
            {} if cache else None
        )

    @property
    def num_classes(self) -> int:
        """Number of classes: background and kinds with masks, the kinds alone with boxes."""
        return len(self.classes)

    @property
    def task(self) -> str:
        """``"segmentation"``, ``"classification"``, ``"detection"`` or ``"instance"``, by
        ``target``."""
        return TARGETS[self.target].task

    def __len__(self) -> int:
        return self.num_images

    def generator(self, index: int) -> np.random.Generator:
        """The generator that draws sample ``index`` (seeded by seed, split and index)."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"Shapes index {index} out of range for {self.num_images} images")
        return np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], index])

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Sample ``index`` before transforms: image (H, W, 3) float32, instance map (H, W)
        int64 (-1 = background, k = the k-th shape), and the class of each instance."""
        rng = self.generator(index)
        h, w = self.height, self.width
        image = _textured(rng, h, w, contrast=self.texture * BACKGROUND_CONTRAST)
        instances = np.full((h, w), -1, dtype=np.int64)
        areas: list[int] = []
        labels: list[int] = []
        lo, hi = self.shapes_per_image
        for _ in range(int(rng.integers(lo, hi + 1))):
            placed, neighbour = None, None
            # drawn only when touching > 0, so that the default images never change
            if self.touching > 0 and labels and rng.random() < self.touching:
                touching = self._place_touching(rng, instances, areas, labels)
                if touching is not None:
                    placed, neighbour = touching[:2], touching[2]
            if placed is None:
                placed = self._place(rng, instances, areas)
            if placed is None:
                continue
            label, inside = placed
            image[inside] = self._fill(rng, image, inside, neighbour)
            instances[inside] = len(labels)
            areas.append(int(inside.sum()))
            labels.append(label)
        if self.noise > 0:
            image = image + rng.normal(0, self.noise, image.shape).astype(np.float32)
        return np.clip(image, 0, 1).astype(np.float32), instances, labels

    def _place(
        self, rng: np.random.Generator, instances: np.ndarray, areas: list[int]
    ) -> tuple[int, np.ndarray] | None:
        """Draw a shape that hides at most ``MAX_OCCLUDED`` of every earlier one (or None)."""
        h, w = self.height, self.width
        side = min(h, w)
        for _ in range(PLACEMENT_TRIES):
            label = int(rng.integers(len(self.kinds))) + 1
            kind = self.kinds[label - 1]
            radius = rng.uniform(*self.scale) * side
            margin = 0.7 * radius
            center = (rng.uniform(margin, w - margin), rng.uniform(margin, h - margin))
            aspect = rng.uniform(0.4, 0.55) if kind == "ring" else rng.uniform(0.25, 0.35)
            inside = shape_mask(kind, h, w, center, radius, rng.uniform(0, 2 * np.pi), aspect)
            if not inside.any():
                continue
            hidden = np.bincount(instances[inside & (instances >= 0)], minlength=len(areas))
            if all(hidden[k] <= MAX_OCCLUDED * areas[k] for k in range(len(areas))):
                return label, inside
        return None

    def _place_touching(
        self,
        rng: np.random.Generator,
        instances: np.ndarray,
        areas: list[int],
        labels: list[int],
    ) -> tuple[int, np.ndarray, np.ndarray] | None:
        """Draw a shape of the class of a random earlier shape, pushed from that shape's centre
        along a random direction until it just stops overlapping it: it shares its outline, or
        (when the last step leaves a gap of background) overlaps it by a sliver. Returns the
        label, the new shape's pixels and the neighbour's visible pixels; None when no try keeps
        it in the image while hiding at most ``MAX_OCCLUDED`` of every earlier shape."""
        for _ in range(PLACEMENT_TRIES):
            k = int(rng.integers(len(labels)))
            label, neighbour = labels[k], instances == k
            kind = self.kinds[label - 1]
            radius = rng.uniform(*self.scale) * min(self.height, self.width)
            aspect = rng.uniform(0.4, 0.55) if kind == "ring" else rng.uniform(0.25, 0.35)
            angle, direction = rng.uniform(0, 2 * np.pi, 2)
            inside = self._against(neighbour, kind, radius, angle, aspect, direction)
            if inside is None:
                continue
            hidden = np.bincount(instances[inside & (instances >= 0)], minlength=len(areas))
            if all(hidden[j] <= MAX_OCCLUDED * areas[j] for j in range(len(areas))):
                return label, inside, neighbour & ~inside
        return None

    def _against(
        self,
        neighbour: np.ndarray,
        kind: str,
        radius: float,
        angle: float,
        aspect: float,
        direction: float,
    ) -> np.ndarray | None:
        """The pixels of a shape moved from the centre of ``neighbour`` (H, W) along
        ``direction`` to where it just touches it; None when its centre would leave the image
        (by ``shape``'s margin) or the two do not overlap to start with."""
        h, w = self.height, self.width
        rows, cols = np.nonzero(neighbour)
        if len(rows) == 0:
            return None
        start = np.array([cols.mean() + 0.5, rows.mean() + 0.5])
        step = np.array([np.cos(direction), np.sin(direction)])

        def shape_at(distance: float) -> np.ndarray:
            centre = start + distance * step
            return shape_mask(kind, h, w, (centre[0], centre[1]), radius, angle, aspect)

        # Bisect between a distance where the two overlap and one where they cannot.
        near = 0.0
        far = 1.25 * radius + float(np.hypot(cols + 0.5 - start[0], rows + 0.5 - start[1]).max())
        if not (shape_at(near) & neighbour).any():
            return None
        while far - near > TOUCH_STEP:
            middle = (near + far) / 2
            near, far = (middle, far) if (shape_at(middle) & neighbour).any() else (near, middle)
        # Just apart, when no background is left between them; else just overlapping.
        distance = far if (_grown(shape_at(far)) & neighbour).any() else near
        centre = start + distance * step
        margin = 0.7 * radius
        if not (margin <= centre[0] <= w - margin and margin <= centre[1] <= h - margin):
            return None
        return shape_at(distance)

    def _fill(
        self,
        rng: np.random.Generator,
        image: np.ndarray,
        inside: np.ndarray,
        neighbour: np.ndarray | None = None,
    ) -> np.ndarray:
        """Pixels of a shape: a random colour contrasting with what it covers (and with the
        ``neighbour`` it touches, if any), mildly textured."""
        under = [image[inside].mean(axis=0)]
        if neighbour is not None and neighbour.any():
            under.append(image[neighbour].mean(axis=0))
        colour = rng.uniform(0, 1, 3).astype(np.float32)
        for _ in range(PLACEMENT_TRIES):
            if all(np.abs(colour - other).mean() >= MIN_CONTRAST for other in under):
                break
            colour = rng.uniform(0, 1, 3).astype(np.float32)
        texture = _textured(rng, self.height, self.width, contrast=self.texture * SHAPE_TEXTURE)[
            inside
        ]
        return np.clip(colour + (texture - texture.mean(axis=0)), 0, 1)

    def _rendered(self, index: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """``render(index)`` as tensors (image (3, H, W), instance map (H, W)) and the labels;
        from the cache when there is one (copies: callers may change them in place)."""
        if self._cache is not None and index in self._cache:
            image, instances, labels = self._cache[index]
            return image.clone(), instances.clone(), labels
        rendered, instance_map, labels = self.render(index)
        image = torch.from_numpy(rendered).permute(2, 0, 1).contiguous()
        instances = torch.from_numpy(instance_map)
        if self._cache is not None:
            self._cache[index] = (image.clone(), instances.clone(), labels)
        return image, instances, labels

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image, mask)`` of sample ``index`` before transforms."""
        image, instances, labels = self._rendered(index)
        lookup = torch.tensor([0, *labels], dtype=torch.int64)
        return image, lookup[instances + 1]

    def load_mask(self, index: int) -> torch.Tensor:
        """The mask of sample ``index`` before transforms, int64 (H, W)."""
        return self.load(index)[1]

    def load_boxes(self, index: int) -> tuple[torch.Tensor, Target]:
        """``(image, target)`` of sample ``index`` before transforms: the visible shapes'
        boxes with 0-based labels, ``image_id`` = ``index``."""
        image, instances, labels = self._rendered(index)
        found = _instances(instances, labels)
        target = make_target(found["boxes"], found["labels"] - 1, index, (self.height, self.width))
        return image, target

    def load_instances(self, index: int) -> tuple[torch.Tensor, Target]:
        """``(image, target)`` of sample ``index`` before transforms: the visible shapes'
        masks (K, H, W) with 0-based labels and the boxes of the masks, ``image_id`` =
        ``index``."""
        image, instances, labels = self._rendered(index)
        found = _instances(instances, labels)
        return image, make_instance_target(found["masks"], found["labels"] - 1, index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if self.target in ("boxes", "instances"):
            load = self.load_boxes if self.target == "boxes" else self.load_instances
            image, target = load(index)
            if self.transforms is not None:
                image, target = self.transforms(image, target)
            return image, {**target, "image_size": (int(image.shape[1]), int(image.shape[2]))}
        image, mask = self.load(index)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        if self.target == "dominant":
            return image, torch.tensor(dominant_class(mask, self.ignore_index))
        return image, mask

    def instances(self, index: int) -> dict[str, torch.Tensor]:
        """Visible instances of sample ``index`` (before transforms), for detection.

        boxes: float32 (K, 4) as (x1, y1, x2, y2) pixel edges around the visible pixels; labels:
        int64 (K,) 1-based as in the masks; masks: bool (K, H, W). Shapes hidden entirely by
        later ones are left out.
        """
        _, instances, labels = self._rendered(index)
        return _instances(instances, labels)


def _instances(instances: torch.Tensor, labels: list[int]) -> dict[str, torch.Tensor]:
    """Boxes, labels and masks of the instances visible in an instance map (H, W) (-1 is
    background, k the k-th shape, whose class is ``labels[k]``)."""
    masks = instances[None] == torch.arange(len(labels))[:, None, None]
    keep = masks.flatten(1).any(dim=1)
    masks = masks[keep]
    kept_labels = torch.tensor(labels, dtype=torch.int64).reshape(-1)[keep]
    return {"boxes": masks_to_boxes(masks), "labels": kept_labels, "masks": masks}


def _grown(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W) grown by one pixel up, down, left and right (4-neighbour dilation)."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown


@DATASETS.register("shapes")
def build_shapes(
    root: object = None,
    split: str = "train",
    transforms: Callable[..., Any] | None = None,
    **options: Any,
) -> Shapes:
    """``Shapes`` through the registry; it is generated, so ``root`` must stay None."""
    if root is not None:
        raise ValueError(f"the shapes data set is generated and takes no root (got {root!r})")
    return Shapes(split=split, transforms=transforms, **options)


@DATASETS.register("shapes", task="detection")
def build_shapes_boxes(
    root: object = None,
    split: str = "train",
    transforms: Callable[..., Any] | None = None,
    **options: Any,
) -> Shapes:
    """``Shapes(target="boxes")`` through the registry, for ``task="detection"``."""
    return build_target_view("boxes", root, split, transforms, options)


@DATASETS.register("shapes", task="instance")
def build_shapes_instances(
    root: object = None,
    split: str = "train",
    transforms: Callable[..., Any] | None = None,
    **options: Any,
) -> Shapes:
    """``Shapes(target="instances")`` through the registry, for ``task="instance"``; its
    ``touching`` defaults to ``INSTANCE_TOUCHING``, so that touching shapes of one class (one
    region of the class map, two instances) are common."""
    options.setdefault("touching", INSTANCE_TOUCHING)
    return build_target_view("instances", root, split, transforms, options)


def build_target_view(
    target: str,
    root: object,
    split: str,
    transforms: Callable[..., Any] | None,
    options: dict[str, Any],
) -> Shapes:
    """``Shapes(target=target)`` through ``build_shapes``; ``options`` may repeat that target
    but not name another."""
    named = options.pop("target", target)
    if named != target:
        task = TARGETS[target].task
        raise ValueError(f"shapes with task={task!r} has target {target!r}, not {named!r}")
    return build_shapes(root, split, transforms, target=target, **options)
