"""Reading images and masks from disk, and the checks every data set shares.

Images come back as float32 ``(3, H, W)`` RGB in [0, 1] whatever their mode on disk: 16-bit
images keep their 16 bits (scaled by 1/65535, never clipped). Masks come back as int64 ``(H, W)``
class indices exactly as stored: a palette PNG gives its indices (never its colours).

Images and masks are both read in their stored pixel order: an EXIF orientation tag is never
applied. Label maps carry no EXIF and annotation tools write them in the stored order, so turning
only the image would misalign every sample whose photo has the tag (silently, for a square one);
torchvision's ``read_image`` and PIL read the same way. Where an image's mask has the size of the
image turned by its tag, the size error says so (see :func:`check_same_size`).

Every problem raises :class:`DataFormatError` naming the file and what was found; data sets built
with ``skip_invalid=True`` hand those errors to a :class:`SkipLog` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger("fcnlab.data")

# Values shown in an error before the list is cut short.
_MAX_SHOWN = 10
# PIL's modes of one 16-bit channel (PNG and TIFF grey images open as ``I;16``).
_MODES_16 = ("I;16", "I;16B", "I;16L", "I;16N")
EXIF_ORIENTATION = 0x0112
# EXIF orientations 5-8 turn the picture by 90 degrees, swapping its height and width.
_EXIF_TRANSPOSED = (5, 6, 7, 8)


class DataFormatError(ValueError):
    """A file of a data set that cannot be used: unreadable, truncated, wrong size or labels."""

    def __init__(self, file: str | Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


class DatasetNotFoundError(FileNotFoundError):
    """A data set root, folder or split list that is not where the layout says it should be.

    ``problem`` is the message without the expected layout that :func:`layout_error` adds.
    """

    def __init__(self, message: str, problem: str | None = None) -> None:
        super().__init__(message)
        self.problem = message if problem is None else problem


class Problem(NamedTuple):
    """One invalid file and why it was rejected."""

    file: str
    reason: str


class SkipLog:
    """Logs and counts the invalid files a data set skips instead of failing on.

    Each problem (file and reason) is recorded once however often it is met; one annotation file
    that holds several bad annotations (COCO's JSON) gives one problem for each. In DataLoader
    workers every worker keeps its own copy, so the main process sees only what it loaded itself.
    """

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self._seen: set[Problem] = set()

    def record(self, error: DataFormatError) -> None:
        """Log ``error`` as a warning and remember it."""
        problem = Problem(error.file, error.reason)
        if problem in self._seen:
            return
        self._seen.add(problem)
        self.problems.append(problem)
        logger.warning("skipping %s: %s", error.file, error.reason)

    def __len__(self) -> int:
        return len(self.problems)


def layout_error(problem: str, layout: str) -> DatasetNotFoundError:
    """A :class:`DatasetNotFoundError` saying ``problem`` and showing the expected ``layout``."""
    return DatasetNotFoundError(f"{problem}; expected this layout:\n{layout.rstrip()}", problem)


def require_path(path: Path, layout: str, what: str = "data set root") -> Path:
    """Return ``path`` if it exists, else raise :class:`DatasetNotFoundError` showing ``layout``."""
    if not path.exists():
        raise layout_error(f"{what} '{path}' does not exist", layout)
    return path


def _open(path: Path, kind: str) -> Image.Image:
    """Open and fully decode ``path``, so truncated files fail here and name the file."""
    if not path.is_file():
        raise DataFormatError(path, f"{kind} file does not exist")
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataFormatError(path, f"cannot read {kind}: {error}") from None
    return image


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image as float32 ``(3, H, W)`` RGB in [0, 1], in its stored pixel order.

    Grayscale, palette, CMYK and RGBA images are converted to RGB (alpha is dropped); see
    :func:`image_to_tensor` for 16-bit and other deep images. EXIF orientation is not applied
    (the module's docstring says why).
    """
    return pixels_to_image(read_pixels(path))


def read_pixels(path: str | Path) -> torch.Tensor:
    """Read an image as its decoded integer pixels (:func:`image_pixels`; for 8 bits a quarter
    of the float image's bytes), as :mod:`fcnlab.data.cache` keeps it in memory."""
    path = Path(path)
    return image_pixels(_open(path, "image"), path)


def image_to_tensor(image: Image.Image, source: str | Path = "image") -> torch.Tensor:
    """A PIL image as float32 ``(3, H, W)`` RGB in [0, 1], pixels in their stored order.

    One 16-bit channel (``I;16``; ``I`` from a PNG, as older Pillow opens 16-bit PNGs) is divided
    by 65535 and repeated three times; Pillow itself reads 16-bit RGB(A) PNGs as 8 bits per
    channel. 32-bit integer or float images (``I``, ``F`` TIFFs) have no agreed range: they raise
    :class:`DataFormatError` naming ``source``.
    """
    return pixels_to_image(image_pixels(image, source))


def image_pixels(image: Image.Image, source: str | Path = "image") -> torch.Tensor:
    """A PIL image's pixels before scaling to [0, 1]: uint8 ``(3, H, W)`` RGB, or int32
    ``(1, H, W)`` for one 16-bit channel; other modes as :func:`image_to_tensor` says."""
    if image.mode in _MODES_16 or (image.mode == "I" and image.format == "PNG"):
        # int32, not uint16: every torch from 2.4 converts it (uint16 has few kernels).
        return torch.from_numpy(np.asarray(image).astype(np.int32))[None]
    if image.mode in ("I", "F"):
        kind = "32-bit integer" if image.mode == "I" else "floating-point"
        raise DataFormatError(
            source,
            f"image is {kind} (mode {image.mode}), which has no standard range of values; "
            "save it with 8 or 16 bits per channel",
        )
    if image.mode == "P" and "transparency" in image.info:
        # PIL wants palette transparency resolved through RGBA before dropping it.
        image = image.convert("RGBA")
    array = np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy for torch
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def pixels_to_image(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels from :func:`image_pixels` as float32 ``(3, H, W)`` RGB in [0, 1]: uint8 divided by
    255, one 16-bit channel divided by 65535 and repeated three times."""
    if pixels.dtype == torch.uint8:
        return pixels.to(torch.float32).div_(255)
    return pixels.to(torch.float32).div_(65535).repeat(3, 1, 1)


def exif_orientation(path: str | Path) -> int:
    """The EXIF orientation tag of image ``path``; 1 (upright) when it has none or is unreadable."""
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError):
        return 1
    return orientation if isinstance(orientation, int) else 1


def read_mask(
    path: str | Path,
    palette: np.ndarray | None = None,
    colour_advice: str = "pass a palette to map its colours to classes",
) -> torch.Tensor:
    """Read a label map as int64 ``(H, W)`` indices, without EXIF and without palette colours.

    Palette (``P``), grayscale (``L``), 16-bit (``I;16``) and bilevel PNGs give their stored
    values. An RGB(A) mask needs ``palette`` ``(K, 3)``: each colour becomes its row index;
    without one it raises, ending with ``colour_advice`` (what the caller's user can do).
    """
    path = Path(path)
    image = _open(path, "mask")
    if image.mode in ("RGB", "RGBA"):
        if palette is None:
            raise DataFormatError(path, f"mask is a colour ({image.mode}) image; {colour_advice}")
        array = colours_to_indices(np.asarray(image.convert("RGB")), palette, path)
    elif image.mode in ("P", "L", "1", "I", "I;16", "I;16B", "I;16L"):
        array = np.asarray(image).astype(np.int64)
    else:
        raise DataFormatError(path, f"mask has unsupported mode {image.mode!r}")
    return torch.from_numpy(array)


def colours_to_indices(rgb: np.ndarray, palette: np.ndarray, path: str | Path) -> np.ndarray:
    """Map an ``(H, W, 3)`` uint8 colour mask to int64 palette indices; unknown colours raise."""
    palette = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    if len(np.unique(palette_codes)) != len(palette_codes):
        raise ValueError(
            "the palette repeats a colour, so colour masks cannot be mapped to classes"
        )
    rgb = rgb.astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    order = np.argsort(palette_codes)
    position = np.searchsorted(palette_codes, codes, sorter=order).clip(max=len(order) - 1)
    indices = order[position]
    unknown = palette_codes[indices] != codes
    if unknown.any():
        found = sorted({tuple(int(c) for c in colour) for colour in rgb[unknown]})
        raise DataFormatError(path, f"mask colours not in the palette: {abbreviated(found)}")
    return indices


def check_same_size(
    image: torch.Tensor, mask: torch.Tensor, image_path: str | Path, mask_path: str | Path
) -> None:
    """Raise :class:`DataFormatError` naming ``mask_path`` if the mask and image sizes differ.

    When the mask has the image's size turned by 90 degrees and the image file has an EXIF tag
    that turns it so, the error says that the mask was drawn on the turned photo.
    """
    image_size, mask_size = tuple(image.shape[-2:]), tuple(mask.shape[-2:])
    if image_size == mask_size:
        return
    reason = (
        f"mask is {mask_size[0]}x{mask_size[1]} but its image '{image_path}' is "
        f"{image_size[0]}x{image_size[1]} (height x width)"
    )
    orientation = exif_orientation(image_path) if mask_size == image_size[::-1] else 1
    if orientation in _EXIF_TRANSPOSED:
        reason += (
            f", the image's size turned by its EXIF orientation {orientation}: the mask was drawn "
            "on the turned photo, while fcnlab reads images in their stored pixel order; save "
            "the image upright without the tag (e.g. with PIL's ImageOps.exif_transpose)"
        )
    raise DataFormatError(mask_path, reason)


def label_table(mapping: Mapping[int, int]) -> torch.Tensor:
    """A lookup table from stored label values to class indices; -1 marks a forbidden value."""
    if min(mapping) < 0:
        raise ValueError(f"stored label values must be >= 0, got {min(mapping)}")
    table = torch.full((max(mapping) + 1,), -1, dtype=torch.int64)
    for stored, index in mapping.items():
        table[stored] = index
    return table


def map_labels(mask: torch.Tensor, table: torch.Tensor, path: str | Path) -> torch.Tensor:
    """Map stored values through ``table`` (from :func:`label_table`); forbidden values raise."""
    inside = (mask >= 0) & (mask < len(table))
    # index_select, not table[...]: advanced indexing's CPU kernel is ~50x slower on a small
    # mask (3 ms vs 0.05 ms for 96x96 with 2 threads), most of a sample's loading time.
    flat = mask.clamp(0, len(table) - 1).reshape(-1).long()
    mapped = table.index_select(0, flat).view(mask.shape)
    invalid = ~inside | (mapped < 0)
    if invalid.any():
        found = torch.unique(mask[invalid]).tolist()
        allowed = (table >= 0).nonzero().flatten().tolist()
        raise DataFormatError(
            path,
            f"mask values {abbreviated(found)} ({int(invalid.sum())} pixels) are not labels of "
            f"this data set; allowed: {_ranges(allowed)}",
        )
    return mapped


def validate_mask(
    mask: torch.Tensor, num_classes: int, ignore_index: int, path: str | Path
) -> torch.Tensor:
    """Check that ``mask`` holds only classes ``0..num_classes-1`` and ``ignore_index``."""
    identity = {index: index for index in range(num_classes)}
    return map_labels(mask, label_table({**identity, ignore_index: ignore_index}), path)


def abbreviated(items: Sequence[object], limit: int = _MAX_SHOWN) -> str:
    """The first ``limit`` items joined by commas, with how many more there are."""
    text = ", ".join(str(item) for item in items[:limit])
    return text + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 3, 255]`` as ``0-3, 255``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)
