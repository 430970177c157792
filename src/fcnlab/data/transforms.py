"""Joint image + mask transforms: one random draw moves both, the mask is never blended.

Every transform is called as ``t(image, mask, generator=None)`` with image float (3, H, W) and
mask int64 (H, W), and returns the transformed pair. Masks are resized with nearest neighbour
(pixel-centre aligned, ``nearest-exact``, so they stay on the image's grid) and padded with the
ignore index; colour changes touch the image only.

Randomness comes from ``generator`` when one is given, else from torch's global generator, which
the DataLoader seeds differently in every worker (``base_seed + worker_id``): ``torch.manual_seed``
makes a pipeline reproducible, and workers never repeat each other's draws.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IGNORE_INDEX = 255

Pair = tuple[torch.Tensor, torch.Tensor]


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """An integer in [0, high]."""
    return int(torch.randint(high + 1, (), generator=generator))


def check_pair(image: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise a ValueError unless image is (C, H, W) floating point and mask (H, W) on its grid."""
    if image.dim() != 3 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float (C, H, W) tensor, got {image.dtype} {tuple(image.shape)}"
        )
    if mask.shape != image.shape[1:]:
        raise ValueError(
            f"mask is {tuple(mask.shape)} but its image is {tuple(image.shape[1:])}: "
            "expected a (H, W) mask of the same size"
        )


def scaled_size(height: int, width: int, factor: float) -> tuple[int, int]:
    """``(H, W)`` scaled by ``factor`` and rounded, at least one pixel each."""
    return max(1, round(height * factor)), max(1, round(width * factor))


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an image (C, H, W) to ``size`` (H, W) bilinearly (antialiased when shrinking)."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0]


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a mask (H, W) to ``size`` by nearest neighbour (``nearest-exact``)."""
    if tuple(mask.shape) == tuple(size):
        return mask
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    return mask.to(torch.int64)


def resize(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> Pair:
    """Resize to ``size`` (H, W): the image bilinearly (antialiased), the mask by nearest."""
    return resize_image(image, size), resize_mask(mask, size)


def pad_crop(
    tensor: torch.Tensor, top: int, left: int, height: int, width: int, fill: float = 0.0
) -> torch.Tensor:
    """The ``height`` x ``width`` window at (``top``, ``left``) of an image (C, H, W) or mask
    (H, W), padded bottom and right with ``fill`` where it reaches past the tensor."""
    pad_h = max(top + height - tensor.shape[-2], 0)
    pad_w = max(left + width - tensor.shape[-1], 0)
    if pad_h or pad_w:
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), value=fill)
    return tensor[..., top : top + height, left : left + width]


def pad_to(
    image: torch.Tensor,
    mask: torch.Tensor,
    height: int,
    width: int,
    fill: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
) -> Pair:
    """Pad bottom and right up to at least ``height`` x ``width``; the mask with ignore."""
    pad_h, pad_w = max(height - image.shape[1], 0), max(width - image.shape[2], 0)
    if pad_h == 0 and pad_w == 0:
        return image, mask
    image = F.pad(image, (0, pad_w, 0, pad_h), value=fill)
    return image, F.pad(mask, (0, pad_w, 0, pad_h), value=ignore_index)


def crop(
    image: torch.Tensor, mask: torch.Tensor, top: int, left: int, height: int, width: int
) -> Pair:
    """The ``height`` x ``width`` window at (``top``, ``left``) of both."""
    window = (slice(top, top + height), slice(left, left + width))
    return image[:, window[0], window[1]], mask[window]


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


def scale_crop(
    image: torch.Tensor,
    mask: torch.Tensor,
    factor: float,
    top: int,
    left: int,
    height: int,
    width: int,
    fill: float = 0.0,
    ignore_index: int = IGNORE_INDEX,
) -> Pair:
    """The pair resized by ``factor`` (to ``scaled_size``), padded bottom and right to at least
    ``height`` x ``width`` (image ``fill``, mask ``ignore_index``) and cropped to that window at
    (``top``, ``left``): the same as ``resize``, ``pad_to`` and ``crop`` in turn.

    When enlarging, only the window's pixels are interpolated (separable bilinear taps for the
    image, nearest taps for the mask), which for a 320 crop of a 500x375 image scaled by 2 is
    several times cheaper than resizing it whole; shrinking resizes the whole (small) result.
    """
    return (
        scale_crop_image(image, factor, top, left, height, width, fill),
        scale_crop_mask(mask, factor, top, left, height, width, ignore_index),
    )


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
    """The image half of :func:`scale_crop`."""
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
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """The mask half of :func:`scale_crop`."""
    size = (mask.shape[0], mask.shape[1])
    window = _enlarged_window(size, factor, top, left, height, width)
    if window is None:
        mask = resize_mask(mask, scaled_size(*size, factor))
        return pad_crop(mask, top, left, height, width, ignore_index)
    scaled_h, scaled_w, rows, cols = window
    mask = mask.index_select(0, _nearest_taps(top, rows, size[0], scaled_h))
    mask = mask.index_select(1, _nearest_taps(left, cols, size[1], scaled_w))
    return pad_crop(mask, 0, 0, height, width, ignore_index)


def hflip(image: torch.Tensor, mask: torch.Tensor) -> Pair:
    """Mirror both left to right."""
    return image.flip(-1), mask.flip(-1)


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


class Compose:
    """Apply transforms in order to (image, mask), passing the same ``generator`` to each."""

    def __init__(self, transforms: Sequence[object]) -> None:
        self.transforms = list(transforms)

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        check_pair(image, mask)
        for transform in self.transforms:
            image, mask = transform(image, mask, generator=generator)
        return image, mask

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.transforms))
        return f"Compose([{inner}])"


class Resize:
    """Resize to a fixed (H, W) (an int gives a square)."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        return resize(image, mask, self.size)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomScale:
    """Resize by a factor drawn uniformly from [``min_scale``, ``max_scale``]."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"RandomScale({min_scale}, {max_scale}): expected 0 < min <= max")
        self.min_scale, self.max_scale = min_scale, max_scale

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        factor = _uniform(self.min_scale, self.max_scale, generator)
        return resize(image, mask, scaled_size(image.shape[1], image.shape[2], factor))

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomCrop:
    """A random ``size`` window; smaller inputs are first padded (image ``fill``, mask ignore)."""

    def __init__(
        self, size: int | tuple[int, int], fill: float = 0.0, ignore_index: int = IGNORE_INDEX
    ) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.fill, self.ignore_index = fill, ignore_index

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        height, width = self.size
        image, mask = pad_to(image, mask, height, width, self.fill, self.ignore_index)
        top = _randint(image.shape[1] - height, generator)
        left = _randint(image.shape[2] - width, generator)
        return crop(image, mask, top, left, height, width)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class RandomHorizontalFlip:
    """Mirror both with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def draw(self, generator: torch.Generator | None = None) -> bool:
        """Whether to flip this time."""
        return float(torch.rand((), generator=generator)) < self.p

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        return hflip(image, mask) if self.draw(generator) else (image, mask)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip({self.p})"


class ColorJitter:
    """Random brightness, contrast and saturation factors in [1 - x, 1 + x]; the mask is kept."""

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4):
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        factors = [
            _uniform(max(0.0, 1 - x), 1 + x, generator)
            for x in (self.brightness, self.contrast, self.saturation)
        ]
        return adjust_colour(image, *factors), mask

    def __repr__(self) -> str:
        return f"ColorJitter({self.brightness}, {self.contrast}, {self.saturation})"


class Normalize:
    """Subtract ``mean`` and divide by ``std`` per channel (ImageNet statistics by default)."""

    def __init__(
        self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> None:
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        return normalize(image, self.mean, self.std), mask

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


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
    ) -> None:
        self.scale = RandomScale(min_scale, max_scale)
        self.crop = RandomCrop(size, fill, ignore_index)

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
        self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> Pair:
        factor, top, left = self.draw((image.shape[1], image.shape[2]), generator)
        return scale_crop(
            image, mask, factor, top, left, *self.crop.size, self.crop.fill, self.crop.ignore_index
        )

    def __repr__(self) -> str:
        return f"RandomScaleCrop({self.crop.size}, {self.scale.min_scale}, {self.scale.max_scale})"


def photometric_steps(
    jitter: float = 0.0,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> list[object]:
    """The steps that touch the image only, ending a pipeline of either task: colour jitter when
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
) -> Compose:
    """The usual training pipeline (torchvision's segmentation reference): random scale, random
    crop padded with ignore (fused: ``RandomScaleCrop``), horizontal flip, optional colour jitter,
    then normalisation (``mean=None`` skips it)."""
    geometry = [RandomScaleCrop(crop_size, *scale), RandomHorizontalFlip(flip)]
    return Compose([*geometry, *photometric_steps(jitter, mean, std)])


def eval_transforms(
    size: int | tuple[int, int] | None = None,
    mean: Sequence[float] | None = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Compose:
    """Evaluation pipeline: optional fixed resize, then normalisation (``mean=None`` skips it)."""
    geometry = [] if size is None else [Resize(size)]
    return Compose([*geometry, *photometric_steps(0.0, mean, std)])
