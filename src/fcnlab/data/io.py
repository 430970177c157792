"""Reading images and masks from disk, and the checks every data set shares.

Images come back as float32 ``(3, H, W)`` RGB in [0, 1] whatever their mode on disk, turned upright
by their EXIF orientation. Masks come back as int64 ``(H, W)`` class indices exactly as stored:
a palette PNG gives its indices (never its colours) and EXIF is never applied, because annotation
tools write label maps in the stored pixel order. Every problem raises :class:`DataFormatError`
naming the file and what was found; data sets built with ``skip_invalid=True`` hand those errors
to a :class:`SkipLog` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

logger = logging.getLogger("fcnlab.data")

# Values shown in an error before the list is cut short.
_MAX_SHOWN = 10


class DataFormatError(ValueError):
    """A file of a data set that cannot be used: unreadable, truncated, wrong size or labels."""

    def __init__(self, file: str | Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


class DatasetNotFoundError(FileNotFoundError):
    """A data set root, folder or split list that is not where the layout says it should be."""


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
    return DatasetNotFoundError(f"{problem}; expected this layout:\n{layout.rstrip()}")


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
    """Read an image as float32 ``(3, H, W)`` RGB in [0, 1], upright by its EXIF orientation.

    Grayscale, palette, CMYK and RGBA images are converted to RGB (alpha is dropped).
    """
    path = Path(path)
    image = ImageOps.exif_transpose(_open(path, "image"))
    if image.mode == "P" and "transparency" in image.info:
        # PIL wants palette transparency resolved through RGBA before dropping it.
        image = image.convert("RGBA")
    array = np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy for torch
    return torch.from_numpy(array).permute(2, 0, 1).contiguous().to(torch.float32).div_(255)


def read_mask(path: str | Path, palette: np.ndarray | None = None) -> torch.Tensor:
    """Read a label map as int64 ``(H, W)`` indices, without EXIF and without palette colours.

    Palette (``P``), grayscale (``L``), 16-bit (``I;16``) and bilevel PNGs give their stored
    values. An RGB(A) mask needs ``palette`` ``(K, 3)``: each colour becomes its row index.
    """
    path = Path(path)
    image = _open(path, "mask")
    if image.mode in ("RGB", "RGBA"):
        if palette is None:
            raise DataFormatError(
                path, f"mask is a colour ({image.mode}) image; pass a palette to map colours"
            )
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
        raise DataFormatError(path, f"mask colours not in the palette: {_shown(found)}")
    return indices


def check_same_size(
    image: torch.Tensor, mask: torch.Tensor, image_path: str | Path, mask_path: str | Path
) -> None:
    """Raise :class:`DataFormatError` naming ``mask_path`` if the mask and image sizes differ."""
    image_size, mask_size = tuple(image.shape[-2:]), tuple(mask.shape[-2:])
    if image_size != mask_size:
        raise DataFormatError(
            mask_path,
            f"mask is {mask_size[0]}x{mask_size[1]} but its image '{image_path}' is "
            f"{image_size[0]}x{image_size[1]} (height x width)",
        )


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
    mapped = table[mask.clamp(0, len(table) - 1)]
    invalid = ~inside | (mapped < 0)
    if invalid.any():
        found = torch.unique(mask[invalid]).tolist()
        allowed = (table >= 0).nonzero().flatten().tolist()
        raise DataFormatError(
            path,
            f"mask values {_shown(found)} ({int(invalid.sum())} pixels) are not labels of this "
            f"data set; allowed: {_ranges(allowed)}",
        )
    return mapped


def validate_mask(
    mask: torch.Tensor, num_classes: int, ignore_index: int, path: str | Path
) -> torch.Tensor:
    """Check that ``mask`` holds only classes ``0..num_classes-1`` and ``ignore_index``."""
    identity = {index: index for index in range(num_classes)}
    return map_labels(mask, label_table({**identity, ignore_index: ignore_index}), path)


def _shown(values: list) -> str:
    """The first few values, with how many more there are."""
    text = ", ".join(str(value) for value in values[:_MAX_SHOWN])
    return text + (f" and {len(values) - _MAX_SHOWN} more" if len(values) > _MAX_SHOWN else "")


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 3, 255]`` as ``0-3, 255``."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1][1] = value
        else:
            runs.append([value, value])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)
