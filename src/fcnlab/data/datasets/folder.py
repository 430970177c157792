"""``ImageMaskFolder``: a plain folder of images and a folder of masks, paired by file stem."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.data.base import SegmentationDataset, Transforms
from fcnlab.data.io import (
    DataFormatError,
    layout_error,
    read_mask,
    require_path,
    validate_mask,
)
from fcnlab.data.palettes import voc_palette
from fcnlab.data.registry import DATASETS

logger = logging.getLogger("fcnlab.data")

FOLDER_LAYOUT = """\
my_data/                                <- root (build_dataset("folder", root, split))
├── images/[{split}/]photo_001.jpg
└── masks/[{split}/]photo_001.png        (index PNG, or colour PNG mapped through a palette)
"""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


class ImageMaskFolder(SegmentationDataset):
    """Images in ``images/`` and masks in ``masks/`` with the same file stem.

    Masks are index PNGs (palette or grayscale: the stored value is the class) or, when
    ``palette`` ``(K, 3)`` is given, colour PNGs whose colours are looked up in it. Without
    ``classes`` there is one class per palette colour below ``ignore_index`` or, without a
    palette either, one per value up to the largest found in the masks (which are all read once).
    An image without a mask, or a mask without an image, is an error (``skip_invalid``: logged
    and counted).
    """

    def __init__(
        self,
        images: str | Path,
        masks: str | Path,
        classes: Sequence[str] | None = None,
        palette: np.ndarray | None = None,
        transforms: Transforms | None = None,
        ignore_index: int = 255,
        skip_invalid: bool = False,
    ) -> None:
        image_files = _files_by_stem(
            require_path(Path(images), FOLDER_LAYOUT, "images folder"), IMAGE_SUFFIXES
        )
        mask_files = _files_by_stem(
            require_path(Path(masks), FOLDER_LAYOUT, "masks folder"), MASK_SUFFIXES
        )
        if not image_files:
            suffixes = "/".join(IMAGE_SUFFIXES)
            raise layout_error(f"images folder '{images}' holds no {suffixes} files", FOLDER_LAYOUT)
        self.mask_palette = None if palette is None else np.asarray(palette, dtype=np.uint8)
        stems = sorted(image_files.keys() & mask_files.keys())
        samples = [(image_files[stem], mask_files[stem]) for stem in stems]
        super().__init__(
            samples, (), np.zeros((0, 3), np.uint8), transforms, skip_invalid, ignore_index
        )
        self._report_unpaired(image_files.keys() - mask_files.keys(), image_files, "mask")
        self._report_unpaired(mask_files.keys() - image_files.keys(), mask_files, "image")
        if classes is None:
            count = self._count_classes()
            classes = [f"class_{index}" for index in range(count)]
        self.classes = tuple(classes)
        if self.mask_palette is not None and len(self.mask_palette) >= len(self.classes):
            self.palette = self.mask_palette[: len(self.classes)]
        else:
            self.palette = voc_palette(len(self.classes))

    def read_raw_mask(self, index: int) -> torch.Tensor:
        """Stored values of mask ``index`` (colours mapped through ``palette``), unchecked."""
        return read_mask(self.samples[index][1], self.mask_palette)

    def load_mask(self, index: int) -> torch.Tensor:
        """Class indices of sample ``index``, checked against the classes and ignore index."""
        path = self.samples[index][1]
        return validate_mask(self.read_raw_mask(index), self.num_classes, self.ignore_index, path)

    def _count_classes(self) -> int:
        """Classes implied by the palette, or else by the largest value in the masks."""
        if self.mask_palette is not None:
            return min(len(self.mask_palette), self.ignore_index)
        largest = 0
        for index in range(len(self)):
            try:
                values = self.read_raw_mask(index)
            except DataFormatError as error:
                if not self.skip_invalid:
                    raise
                self.skip_log.record(error)
                continue
            values = values[values != self.ignore_index]
            if values.numel():
                largest = max(largest, int(values.max()))
        return largest + 1

    def _report_unpaired(self, stems: set[str], files: dict[str, Path], missing: str) -> None:
        if not stems:
            return
        unpaired = [files[stem] for stem in sorted(stems)]
        if not self.skip_invalid:
            shown = ", ".join(f"'{path}'" for path in unpaired[:5])
            more = f" and {len(unpaired) - 5} more" if len(unpaired) > 5 else ""
            raise DataFormatError(
                unpaired[0].parent, f"{len(unpaired)} files have no {missing}: {shown}{more}"
            )
        for path in unpaired:
            self.skip_log.record(DataFormatError(path, f"has no {missing} with the same stem"))


def _files_by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Files directly in ``folder`` with one of ``suffixes``, by stem; a repeated stem raises."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in files:
                raise DataFormatError(path, f"has the same stem as '{files[path.stem]}'")
            files[path.stem] = path
    return files


@DATASETS.register("folder")
def build_folder(
    root: str | Path,
    split: str = "train",
    transforms: Transforms | None = None,
    **options: Any,
) -> ImageMaskFolder:
    """``ImageMaskFolder`` of ``root/images/{split}`` and ``root/masks/{split}`` if the split
    folders exist, else of ``root/images`` and ``root/masks`` (the whole folder is one split)."""
    root = require_path(Path(root), FOLDER_LAYOUT)
    images, masks = root / "images", root / "masks"
    if (images / split).is_dir():
        images, masks = images / split, masks / split
    else:
        logger.info("'%s' has no split folder '%s'; using all its images", images, split)
    return ImageMaskFolder(images, masks, transforms=transforms, **options)
