"""One joint transform pipeline: a random draw moves the image and every target it comes with.

Every transform is called as ``t(image, annotation, generator=None) -> (image, annotation)`` with
image float (3, H, W); the annotation is what a data set view gives with its image (the way
``torchvision.transforms.v2`` treats ``tv_tensors``):

- a segmentation mask, int64 (H, W): the samples of the segmentation view stay ``(image, mask)``;
- a target dict (:mod:`fcnlab.data.targets`) holding any of ``mask`` (H, W) class indices,
  ``boxes`` (K, 4) xyxy pixel edges and ``masks`` (K, H, W) bool instance masks. Its per-instance
  fields (``boxes``, ``labels``, ``iscrowd``, ``difficult``, ``masks``) follow the instances a
  crop keeps, other keys pass through, and ``Compose`` sets ``image_size`` to the final size. The
  input dict is never modified.

Geometric steps (resize, random scale, crop, flip, padding) move all of these together. Masks,
class maps and instance masks alike, are resized by nearest neighbour (pixel-centre aligned,
``nearest-exact``, so they stay on the image's grid) and never blended; padding fills a class map
with the ignore index and instance masks with False. Boxes are xyxy pixel edges, so resizing
scales them by the exact ratio of output to input size (bilinear resizing with
``align_corners=False`` maps pixel edges onto pixel edges), a flip maps ``x`` to ``W - x`` and a
crop shifts them and clips them to the window; a box cut below :func:`crop_boxes`'s rule is
dropped with all its instance's fields. A target holding instance ``masks`` is an instance
target, and its masks decide (detectron2's ``DatasetMapper`` with ``recompute_boxes`` and
``filter_empty_instances``): its boxes are recomputed from the moved masks (a crop that cuts a
ring in two gives the box of what is left, not the clipped box of the whole ring), and an
instance is dropped exactly when its mask has no pixel left. Photometric steps (colour jitter,
normalisation) change the image alone.

Randomness comes from ``generator`` when one is given, else from torch's global generator, which
the DataLoader seeds differently in every worker (``base_seed + worker_id``): ``torch.manual_seed``
makes a pipeline reproducible, and workers never repeat each other's draws. A step draws the same
numbers whatever annotation it moves, so an image comes out the same with a mask or with boxes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from fcnlab.data.targets import select_instances
from fcnlab.ops.masks import masks_to_boxes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255
# A box cut by a crop is kept while at least this share of its area stays inside the window ...
MIN_VISIBLE = 0.3
# ... and its visible part is at least this many pixels wide and high.
MIN_SIZE = 2.0
# The target dict keys that geometric steps move.
MOVED_KEYS = ("mask", "boxes", "masks")

# A segmentation mask (H, W) or a target dict.
Annotation = torch.Tensor | Mapping[str, Any]
Sample = tuple[torch.Tensor, Annotation]
# How a geometric step moves a mask (H, W) or instance masks (K, H, W), padding with a fill ...
MaskMove = Callable[[torch.Tensor, float], torch.Tensor]
# ... and boxes (K, 4): the moved boxes and which to keep (None: all).
BoxMove = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """An integer in [0, high]."""
    return int(torch.randint(high + 1, (), generator=generator))


def check_sample(image: torch.Tensor, annotation: Annotation) -> None:
    """Raise a ValueError unless image is (C, H, W) floating point and ``annotation`` is a mask
    (H, W) on its grid or a target dict whose ``mask``, ``boxes`` and ``masks`` fit it."""
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float (C, H, W) tensor, got {image.dtype} {tuple(image.shape)}"
        )
    size = tuple(image.shape[1:])
    if isinstance(annotation, torch.Tensor):
        _check_mask("mask", annotation, size)
        return
    if not isinstance(annotation, Mapping) or not any(key in annotation for key in MOVED_KEYS):
        found = sorted(annotation) if isinstance(annotation, Mapping) else type(annotation).__name__
        raise ValueError(
            f"a sample's target must be a mask (H, W) or a dict holding any of "
            f"{', '.join(map(repr, MOVED_KEYS))}; got {found}"
        )
    if "mask" in annotation:
        _check_mask("target['mask']", annotation["mask"], size)
    boxes, masks = annotation.get("boxes"), annotation.get("masks")
    if "boxes" in annotation and (
        not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4
    ):
        found = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"target['boxes'] must be an (M, 4) tensor of xyxy boxes, got {found}")
    if "masks" in annotation:
        if (
            not isinstance(masks, torch.Tensor)
            or masks.dtype != torch.bool
            or masks.dim() != 3
            or tuple(masks.shape[1:]) != size
        ):
            found = f"{masks.dtype} {tuple(masks.shape)}" if isinstance(masks, torch.Tensor) else ""
            raise ValueError(
                f"target['masks'] must be a bool (K, H, W) tensor with (H, W) = {size}, the "
                f"image's size; got {found or type(masks).__name__}"
            )
        if boxes is not None and len(masks) != len(boxes):
            raise ValueError(
                f"target holds {len(boxes)} boxes but {len(masks)} masks: expected one per instance"
            )


def _check_mask(name: str, mask: object, size: tuple[int, ...]) -> None:
    """Raise unless ``mask`` is a (H, W) tensor of ``size``."""
    shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
    if shape != size:
        raise ValueError(
            f"{name} is {shape} but its image is {size}: expected a (H, W) mask of the same size"
        )


# Tensor kernels: one kind of tensor each (an image, a mask or instance masks, boxes).


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """``(H, W)`` scaled by ``factor`` and rounded, at least one pixel each."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an image (C, H, W) to ``size`` (H, W) bilinearly (antialiased when shrinking)."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a mask (H, W) or instance masks (K, H, W) to ``size`` by nearest neighbour
    (``nearest-exact``), keeping the dtype."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mask.numel() == 0:
        return mask.new_zeros((*mask.shape[:-2], *size))
    planes = mask.reshape(1, -1, *mask.shape[-2:]).float()
    resized = F.interpolate(planes, size=size, mode="nearest-exact")
    return resized.reshape(*mask.shape[:-2], *size).to(mask.dtype)


def pad_crop(
    tensor: torch.Tensor, top: int, left: int, height: int, width: int, fill: float = 0.0
) -> torch.Tensor:
    """The ``height`` x ``width`` window at (``top``, ``left``) of an image (C, H, W) or mask
    (..., H, W), padded bottom and right with ``fill`` where it reaches past the tensor."""
    pad_h = max(top + height - tensor.shape[-2], 0)
    pad_w = max(left + width - tensor.shape[-1], 0)
    if pad_h or pad_w:
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), value=fill)
    return tensor[..., top : top + height, left : left + width]


def _linear_taps(
    start: int, length: int, in_size: int, out_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices i0, i1 and weights of i1 for output pixels [start, start + length) of a
    bilinear resize ``in_size -> out_size`` (``align_corners=False``, as ``F.interpolate``)."""
    scale = in_size / out_size
    src = ((torch.arange(start, start + length, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(
        min=0
    )
    i0 = src.floor().long().clamp(max=in_size - 1)
    return i0, (i0 + 1).clamp(max=in_size - 1), (src - i0).float()


def _nearest_taps(start: int, length: int, in_size: int, out_size: int) -> torch.Tensor:
    """Source indices of output pixels [start, start + length) of a ``nearest-exact`` resize,
    rounded as PyTorch's kernel rounds them (float32 scale, product rounded to float32) so that
    ties fall on the same side."""
    scale = torch.tensor(in_size, dtype=torch.float32) / out_size
    src = (torch.arange(start, start + length, dtype=torch.float64) + 0.5) * scale.double()
    return src.float().floor().long().clamp(max=in_size - 1)


def _enlarged_window(
    size: tuple[int, int], factor: float, top: int, left: int, height: int, width: int
) -> tuple[int, int, int, int] | None:
    """``(scaled_h, scaled_w, rows, cols)``: the scaled size and how much of the window it
    covers, or None when ``factor`` shrinks a side (then the whole tensor is resized)."""
    scaled_h, scaled_w = scaled_size(*size, factor)
    if scaled_h < size[0] or scaled_w < size[1]:
        return None
    return scaled_h, scaled_w, min(height, scaled_h - top), min(width, scaled_w - left)


def scale_crop_image(
    image: torch.Tensor,
    factor: float,
    top: int,
    left: int,
    height: int,
    width: int,
    fill: float = 0.0,
) -> torch.Tensor:
    """The image (C, H, W) resized by ``factor`` (to ``scaled_size``), padded bottom and right
    with ``fill`` to at least ``height`` x ``width`` and cropped to that window at (``top``,
    ``left``): the same as ``resize_image`` then ``pad_crop``.

    When enlarging, only the window's pixels are interpolated (separable bilinear taps), which
    for a 320 crop of a 500x375 image scaled by 2 is several times cheaper than resizing it
    whole; shrinking resizes the whole (small) result.
    """
    size = (image.shape[1], image.shape[2])
    window = _enlarged_window(size, factor, top, left, height, width)
    if window is None:
        return pad_crop(
            resize_image(image, scaled_size(*size, factor)), top, left, height, width, fill
        )
    scaled_h, scaled_w, rows, cols = window
    i0, i1, wy = _linear_taps(top, rows, size[0], scaled_h)
    j0, j1, wx = _linear_taps(left, cols, size[1], scaled_w)
    image = image.index_select(1, i0).lerp_(image.index_select(1, i1), wy[:, None])
    image = image.index_select(2, j0).lerp_(image.index_select(2, j1), wx)
    return pad_crop(image, 0, 0, height, width, fill)


def scale_crop_mask(
    mask: torch.Tensor,
    factor: float,
    top: int,
    left: int,
    height: int,
    width: int,
    fill: float = IGNORE_INDEX,
) -> torch.Tensor:
    """:func:`scale_crop_image` for a mask (H, W) or instance masks (K, H, W): nearest taps,
    padded with ``fill``."""
    size = (mask.shape[-2], mask.shape[-1])
    window = _enlarged_window(size, factor, top, left, height, width)
    if window is None:
        mask = resize_mask(mask, scaled_size(*size, factor))
        return pad_crop(mask, top, left, height, width, fill)
    scaled_h, scaled_w, rows, cols = window
    mask = mask.index_select(-2, _nearest_taps(top, rows, size[0], scaled_h))
    mask = mask.index_select(-1, _nearest_taps(left, cols, size[1], scaled_w))
    return pad_crop(mask, 0, 0, height, width, fill)


def resize_boxes(
    boxes: torch.Tensor, in_size: tuple[int, int], out_size: tuple[int, int]
) -> torch.Tensor:
    """xyxy ``boxes`` (K, 4) of an image of ``in_size`` (H, W) in the frame of the image resized
    to ``out_size``: x scaled by W'/W, y by H'/H."""
    sy, sx = out_size[0] / in_size[0], out_size[1] / in_size[1]
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


def flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """xyxy ``boxes`` (K, 4) of an image ``width`` pixels wide, mirrored left to right:
    ``x1' = W - x2`` and ``x2' = W - x1``."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)


def crop_boxes(
    boxes: torch.Tensor,
    top: int,
    left: int,
    height: int,
    width: int,
    min_visible: float = MIN_VISIBLE,
    min_size: float = MIN_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """xyxy ``boxes`` (K, 4) in the frame of the ``height`` x ``width`` window at (``top``,
    ``left``), clipped to it, and a bool mask of the boxes to keep.

    A box the window does not cut is always kept; a cut one is kept when at least
    ``min_visible`` of its area and at least ``min_size`` pixels of its width and of its height
    remain inside (a sliver of an object teaches a detector nothing it could find again).
    """
    shifted = boxes - boxes.new_tensor([left, top, left, top])
    limits = boxes.new_tensor([width, height, width, height])
    clipped = torch.minimum(shifted.clamp(min=0), limits)
    cut = (clipped != shifted).any(dim=1)
    size = clipped[:, 2:] - clipped[:, :2]
    area = (shifted[:, 2:] - shifted[:, :2]).prod(dim=1)
    visible = (
        (size > 0).all(dim=1)
        & (size >= min_size).all(dim=1)
        & (size.prod(dim=1) >= min_visible * area)
    )
    return clipped, ~cut | visible


# Joint operations: one geometric change applied to the image and its annotation.


def move_annotation(
    annotation: Annotation, mask: MaskMove, boxes: BoxMove, ignore_index: int = IGNORE_INDEX
) -> Annotation:
    """``annotation`` after one geometric change: ``mask(tensor, fill)`` moves a mask (a bare
    one or ``target["mask"]``, padded with ``ignore_index``) and ``target["masks"]`` (padded with
    False); ``boxes(boxes)`` moves ``target["boxes"]`` and says which to keep.

    With instance masks, the boxes are recomputed from the moved masks and the instances whose
    mask is left empty are dropped; without, the instances whose box is not kept. A dropped
    instance leaves every per-instance field."""
    if isinstance(annotation, torch.Tensor):
        return mask(annotation, ignore_index)
    target = dict(annotation)
    keep: torch.Tensor | None = None
    if "mask" in target:
        target["mask"] = mask(target["mask"], ignore_index)
    if "masks" in target:
        target["masks"] = mask(target["masks"], False)
        keep = target["masks"].flatten(1).any(dim=1)
        if "boxes" in target:
            target["boxes"] = masks_to_boxes(target["masks"]).to(target["boxes"].dtype)
    elif "boxes" in target:
        target["boxes"], keep = boxes(target["boxes"])
    return target if keep is None or bool(keep.all()) else select_instances(target, keep)


def resize(image: torch.Tensor, annotation: Annotation, size: tuple[int, int]) -> Sample:
    """Resize to ``size`` (H, W): the image bilinearly (antialiased), masks by nearest, boxes
    by the ratio of sizes."""
    in_size = (image.shape[1], image.shape[2])
    moved = move_annotation(
        annotation,
        lambda mask, fill: resize_mask(mask, size),
        lambda boxes: (resize_boxes(boxes, in_size, size), None),
    )
    return resize_image(image, size), moved


def crop(
    image: torch.Tensor,
    annotation: Annotation,
    top: int,
    left: int,
    height: int,
    width: int,
    fill: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
    min_visible: float = MIN_VISIBLE,
    min_size: float = MIN_SIZE,
) -> Sample:
    """The ``height`` x ``width`` window at (``top``, ``left``), padded bottom and right where
    it reaches past the image (image ``fill``, masks ignore or False); boxes are clipped to the
    window and cut ones dropped by :func:`crop_boxes`'s rule."""
    visible = (min(height, image.shape[1] - top), min(width, image.shape[2] - left))
    moved = move_annotation(
        annotation,
        lambda mask, mask_fill: pad_crop(mask, top, left, height, width, mask_fill),
        lambda boxes: crop_boxes(boxes, top, left, *visible, min_visible, min_size),
        ignore_index,
    )
    return pad_crop(image, top, left, height, width, fill), moved


def scale_crop(
    image: torch.Tensor,
    annotation: Annotation,
    factor: float,
    top: int,
    left: int,
    height: int,
    width: int,
    fill: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
    min_visible: float = MIN_VISIBLE,
    min_size: float = MIN_SIZE,
) -> Sample:
    """The sample resized by ``factor`` (to ``scaled_size``) and cropped to the ``height`` x
    ``width`` window at (``top``, ``left``), padded where it reaches past the scaled image: the
    same as ``resize`` then ``crop``, computing only the window's pixels when enlarging
    (:func:`scale_crop_image`)."""
    in_size = (image.shape[1], image.shape[2])
    scaled = scaled_size(*in_size, factor)
    # The window may reach past the scaled image into padding, where no box can be.
    visible = (min(height, scaled[0] - top), min(width, scaled[1] - left))

    def move_boxes(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes = resize_boxes(boxes, in_size, scaled)
        return crop_boxes(boxes, top, left, *visible, min_visible, min_size)

    moved = move_annotation(
        annotation,
        lambda mask, mask_fill: scale_crop_mask(mask, factor, top, left, height, width, mask_fill),
        move_boxes,
        ignore_index,
    )
    return scale_crop_image(image, factor, top, left, height, width, fill), moved


def hflip(image: torch.Tensor, annotation: Annotation) -> Sample:
    """Mirror the sample left to right."""
    width = image.shape[2]
    moved = move_annotation(
        annotation, lambda mask, fill: mask.flip(-1), lambda boxes: (flip_boxes(boxes, width), None)
    )
    return image.flip(-1), moved


# Photometric operations: the image alone.


def adjust_colour(
    image: torch.Tensor, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0
) -> torch.Tensor:
    """Scale brightness, contrast (towards the mean grey) and saturation (towards the grey image).

    The factors follow torchvision's ``ColorJitter``: 1 leaves the image as it is; the result is
    clamped to [0, 1] after each step.
    """
    image = (image * brightness).clamp(0, 1)
    mean = grey(image).mean()
    image = ((image - mean) * contrast + mean).clamp(0, 1)
    return ((image - grey(image)) * saturation + grey(image)).clamp(0, 1)


def grey(image: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (H, W) of an RGB image (3, H, W), as torchvision's ``rgb_to_grayscale``."""
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


def normalize(
    image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> torch.Tensor:
    """``(image - mean) / std`` per channel."""
    mean_t = torch.as_tensor(mean, dtype=image.dtype).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=image.dtype).view(-1, 1, 1)
    return (image - mean_t) / std_t


# The steps of a pipeline.


class Compose:
    """Apply transforms in order to (image, annotation), passing the same ``generator`` to each;
    a target dict gets the final size as ``image_size``."""

    def __init__(self, transforms: Sequence[object]) -> None:
        self.transforms = list(transforms)

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        check_sample(image, annotation)
        for transform in self.transforms:
            image, annotation = transform(image, annotation, generator=generator)
        if isinstance(annotation, Mapping):
            annotation = {**annotation, "image_size": (int(image.shape[1]), int(image.shape[2]))}
        return image, annotation

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.transforms))
        return f"Compose([{inner}])"


class Resize:
    """Resize to a fixed (H, W) (an int gives a square)."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        return resize(image, annotation, self.size)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomScale:
    """Resize by a factor drawn uniformly from [``min_scale``, ``max_scale``]."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"RandomScale({min_scale}, {max_scale}): expected 0 < min <= max")
        self.min_scale, self.max_scale = min_scale, max_scale

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        factor = _uniform(self.min_scale, self.max_scale, generator)
        return resize(image, annotation, scaled_size(image.shape[1], image.shape[2], factor))

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomCrop:
    """A random ``size`` window; smaller inputs are first padded (image ``fill``, masks ignore or
    False); cut boxes are dropped below ``min_visible`` of their area or ``min_size`` pixels."""

    def __init__(
        self,
        size: int | tuple[int, int],
        fill: float = 0.0,
        ignore_index: int = IGNORE_INDEX,
        min_visible: float = MIN_VISIBLE,
        min_size: float = MIN_SIZE,
    ) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.fill, self.ignore_index = fill, ignore_index
        self.min_visible, self.min_size = min_visible, min_size

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        height, width = self.size
        top = _randint(max(image.shape[1] - height, 0), generator)
        left = _randint(max(image.shape[2] - width, 0), generator)
        return crop(
            image, annotation, top, left, height, width,
            self.fill, self.ignore_index, self.min_visible, self.min_size,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class RandomHorizontalFlip:
    """Mirror the sample with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def draw(self, generator: torch.Generator | None = None) -> bool:
        """Whether to flip this time."""
        return float(torch.rand((), generator=generator)) < self.p

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        return hflip(image, annotation) if self.draw(generator) else (image, annotation)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip({self.p})"


class RandomScaleCrop:
    """``RandomScale`` then ``RandomCrop`` in one step that resizes only the cropped pixels
    (``scale_crop``); it draws the same factor and window as the two would in sequence."""

    def __init__(
        self,
        size: int | tuple[int, int],
        min_scale: float = 0.5,
        max_scale: float = 2.0,
        fill: float = 0.0,
        ignore_index: int = IGNORE_INDEX,
        min_visible: float = MIN_VISIBLE,
        min_size: float = MIN_SIZE,
    ) -> None:
        self.scale = RandomScale(min_scale, max_scale)
        self.crop = RandomCrop(size, fill, ignore_index, min_visible, min_size)

    def draw(
        self, size: tuple[int, int], generator: torch.Generator | None = None
    ) -> tuple[float, int, int]:
        """Draw the scale factor and the window's (top, left) for an input of ``size`` (H, W)."""
        factor = _uniform(self.scale.min_scale, self.scale.max_scale, generator)
        scaled_h, scaled_w = scaled_size(*size, factor)
        height, width = self.crop.size
        top = _randint(max(scaled_h - height, 0), generator)
        left = _randint(max(scaled_w - width, 0), generator)
        return factor, top, left

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        factor, top, left = self.draw((image.shape[1], image.shape[2]), generator)
        window = self.crop
        return scale_crop(
            image, annotation, factor, top, left, *window.size,
            window.fill, window.ignore_index, window.min_visible, window.min_size,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"RandomScaleCrop({self.crop.size}, {self.scale.min_scale}, {self.scale.max_scale})"


class ColorJitter:
    """Random brightness, contrast and saturation factors in [1 - x, 1 + x]; targets are kept."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4):
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        factors = [
            _uniform(max(0.0, 1 - x), 1 + x, generator)
            for x in (self.brightness, self.contrast, self.saturation)
        ]
        return adjust_colour(image, *factors), annotation

    def __repr__(self) -> str:
        return f"ColorJitter({self.brightness}, {self.contrast}, {self.saturation})"


class Normalize:
    """Subtract ``mean`` and divide by ``std`` per channel (ImageNet statistics by default)."""

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(
        self, image: torch.Tensor, annotation: Annotation, generator: torch.Generator | None = None
    ) -> Sample:
        return normalize(image, self.mean, self.std), annotation

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def photometric_steps(
    jitter: float = 0.0,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> list[object]:
    """The steps that touch the image only, ending a pipeline: colour jitter when
    ``jitter > 0``, then normalisation unless ``mean`` is None."""
    steps: list[object] = [ColorJitter(jitter, jitter, jitter)] if jitter > 0 else []
    if mean is not None:
        steps.append(Normalize(mean, std))
    return steps


def train_transforms(
    crop_size: int | tuple[int, int],
    scale: tuple[float, float] = (0.5, 2.0),
    flip: float = 0.5,
    jitter: float = 0.0,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    min_visible: float = MIN_VISIBLE,
    min_size: float = MIN_SIZE,
) -> Compose:
    """The usual training pipeline (torchvision's segmentation and detection references): random
    scale, random crop padded with ignore (fused: ``RandomScaleCrop``; cut boxes dropped below
    ``min_visible`` / ``min_size``), horizontal flip, optional colour jitter, then normalisation
    (``mean=None`` skips it). It serves masks and target dicts alike."""
    geometry = [
        RandomScaleCrop(crop_size, *scale, min_visible=min_visible, min_size=min_size),
        RandomHorizontalFlip(flip),
    ]
    return Compose([*geometry, *photometric_steps(jitter, mean, std)])


def eval_transforms(
    size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Compose:
    """Evaluation pipeline: optional fixed resize, then normalisation (``mean=None`` skips it)."""
    geometry = [] if size is None else [Resize(size)]
    return Compose([*geometry, *photometric_steps(0.0, mean, std)])
