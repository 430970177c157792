"""``ImageMaskFolder``: a plain folder of images and a folder of masks, paired by file stem.

The ``folder`` data set finds a split's two folders in one of three layouts (``FOLDER_LAYOUT``):
``images/{split}`` + ``masks/{split}``, ``{split}/images`` + ``{split}/masks``, or the ``images``
and ``masks`` options. A folder without split sub-folders is one split, ``all``: asking it for
``train`` or ``val`` is an error, since both would silently be the same images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.data.base import SegmentationDataset, Transforms
from fcnlab.data.io import (
    DataFormatError,
    abbreviated,
    layout_error,
    read_mask,
    require_path,
    validate_mask,
)
from fcnlab.data.palettes import voc_palette
from fcnlab.data.registry import DATASETS

FOLDER_LAYOUT = """\
my_data/                                <- root (build_dataset("folder", root, split))
├── images/{split}/photo_001.jpg        or  {split}/images/photo_001.jpg
└── masks/{split}/photo_001.png             {split}/masks/photo_001.png
(index PNGs: the value is the class; or colour PNGs mapped through a palette). Without split
folders, images/ and masks/ are the one split 'all'; the images and masks options name other
folders, e.g. images: photos/{split}
"""

# The split of a folder that has no split folders: every image.
ALL_SPLIT = "all"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
# Masks found with these suffixes are refused with the reason rather than left unpaired.
LOSSY_SUFFIXES = (".jpg", ".jpeg")
MASK_VALUES = ("index", "binary")
BINARY_CLASSES = ("background", "foreground")
# Binary masks are usually saved 0/255, and 255 is the usual ignore index.
BINARY_FOREGROUND = 255

JPEG_REASON = (
    "JPEG's lossy compression changes label values along every edge (a 1 next to a 0 is stored "
    "as 0, 1 or 2), so a JPEG cannot hold a mask; save the masks as PNG"
)
BINARY_ADVICE = (
    "mask holds only the values 0 and 255 and 255 is the ignore index, so all its foreground "
    "would be ignored; if 255 marks the foreground of a binary mask, set the option "
    "mask_values: binary (data.options.mask_values) to read it as class 1, and if 255 really "
    "means 'ignore' here, set mask_values: index"
)


class ImageMaskFolder(SegmentationDataset):
    """Images in ``images/`` and masks in ``masks/`` with the same file stem.

    Masks are index PNGs (palette or grayscale: the stored value is the class) or, when
    ``palette`` ``(K, 3)`` is given, colour PNGs whose colours are looked up in it. Stored values
    can be renamed: ``mask_map`` maps stored values to classes (``{255: 1}``), and
    ``mask_values="binary"`` is ``mask_map={255: 1}`` with the classes ``background`` and
    ``foreground``, for masks saved 0/255 (or 0/1). With the default ``mask_values=None`` a mask
    holding only 0 and 255 while ``ignore_index`` is 255 is refused (its foreground would be
    ignored: a binary mask, most likely); ``mask_values="index"`` reads it as stored.

    Without ``classes`` there is one class per palette colour below ``ignore_index`` or, without
    a palette either, one per value up to the largest found in the masks (which are all read
    once). An image without a mask, a mask without an image or a JPEG mask is an error
    (``skip_invalid``: logged and counted).
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
        mask_values: str | None = None,
        mask_map: Mapping[Any, Any] | None = None,
    ) -> None:
        self.mask_values = mask_values
        self.mask_map = _mask_map(mask_values, mask_map)
        image_files = _files_by_stem(
            require_path(Path(images), FOLDER_LAYOUT, "images folder"), IMAGE_SUFFIXES
        )
        mask_folder = require_path(Path(masks), FOLDER_LAYOUT, "masks folder")
        mask_files = _files_by_stem(mask_folder, MASK_SUFFIXES)
        lossy_files = _files_by_stem(mask_folder, LOSSY_SUFFIXES)
        if not image_files:
            suffixes = "/".join(IMAGE_SUFFIXES)
            raise layout_error(f"images folder '{images}' holds no {suffixes} files", FOLDER_LAYOUT)
        self.mask_palette = None if palette is None else np.asarray(palette, dtype=np.uint8)
        stems = sorted(image_files.keys() & mask_files.keys())
        samples = [(image_files[stem], mask_files[stem]) for stem in stems]
        super().__init__(
            samples, (), np.zeros((0, 3), np.uint8), transforms, skip_invalid, ignore_index
        )
        lossy = {stem: path for stem, path in lossy_files.items() if stem not in mask_files}
        self._report(sorted(lossy.values()), "are JPEG masks", "is a JPEG mask", JPEG_REASON)
        unpaired_images = image_files.keys() - mask_files.keys() - lossy.keys()
        unpaired_masks = mask_files.keys() - image_files.keys()
        self._report(
            [image_files[s] for s in sorted(unpaired_images)],
            "have no mask",
            "has no mask with the same stem",
        )
        self._report(
            [mask_files[s] for s in sorted(unpaired_masks)],
            "have no image",
            "has no image with the same stem",
        )
        # Files holding each class value, when the classes are counted from the masks.
        self.value_files: dict[int, list[Path]] | None = None
        if classes is None:
            classes = BINARY_CLASSES if mask_values == "binary" else self._count_classes()
        self.classes = tuple(classes)
        if self.mask_palette is not None and len(self.mask_palette) >= len(self.classes):
            self.palette = self.mask_palette[: len(self.classes)]
        else:
            self.palette = voc_palette(len(self.classes))

    def read_raw_mask(self, index: int) -> torch.Tensor:
        """Stored values of mask ``index`` (colours mapped through ``palette``), unchecked."""
        return read_mask(self.samples[index][1], self.mask_palette)

    def read_classes(self, index: int) -> torch.Tensor:
        """Mask ``index`` through ``mask_map`` (or refused as a 0/255 binary mask), unchecked."""
        path = self.samples[index][1]
        stored = self.read_raw_mask(index)
        if self.mask_map:
            classes = stored.clone()
            for value, class_index in self.mask_map.items():
                classes[stored == value] = class_index
            return classes
        if (
            self.mask_values is None
            and self.ignore_index == BINARY_FOREGROUND
            and bool((stored == BINARY_FOREGROUND).any())
            and bool(((stored == 0) | (stored == BINARY_FOREGROUND)).all())
        ):
            raise DataFormatError(path, BINARY_ADVICE)
        return stored

    def load_mask(self, index: int) -> torch.Tensor:
        """Class indices of sample ``index``, checked against the classes and ignore index."""
        path = self.samples[index][1]
        return validate_mask(self.read_classes(index), self.num_classes, self.ignore_index, path)

    def classes_note(self, expected: int) -> str:
        """Where the mask values behind a class count other than ``expected`` are."""
        if self.value_files is None:
            return ""
        if self.num_classes < expected:
            return (
                f"its classes were counted from the mask values, whose largest is "
                f"{self.num_classes - 1}; name all {expected} classes with the option classes "
                "(data.options.classes)"
            )
        beyond = sorted(value for value in self.value_files if value >= expected)
        files = sorted({path for value in beyond for path in self.value_files[value]})
        shown = abbreviated([f"'{path}'" for path in files], limit=5)
        return (
            f"its classes were counted from the mask values, and values {abbreviated(beyond)}, "
            f"not classes 0-{expected - 1}, are in {len(files)} masks: {shown}; correct those "
            "masks, or name the classes with the option classes (data.options.classes)"
        )

    def _count_classes(self) -> list[str]:
        """Class names implied by the palette, or else by the largest value in the masks."""
        if self.mask_palette is not None:
            count = min(len(self.mask_palette), self.ignore_index)
        else:
            self.value_files = {}
            for index in range(len(self)):
                try:
                    values = self.read_classes(index)
                except DataFormatError as error:
                    if not self.skip_invalid:
                        raise
                    self.skip_log.record(error)
                    continue
                for value in torch.unique(values[values != self.ignore_index]).tolist():
                    self.value_files.setdefault(int(value), []).append(self.samples[index][1])
            count = max(self.value_files, default=0) + 1
        return [f"class_{index}" for index in range(count)]

    def _report(self, files: list[Path], summary: str, reason: str, why: str = "") -> None:
        """Raise one error for ``files`` ("N files {summary}: ...; {why}") or, with
        ``skip_invalid``, record each one ("{file}: {reason}: {why}")."""
        if not files:
            return
        if not self.skip_invalid:
            shown = abbreviated([f"'{path}'" for path in files], limit=5)
            message = f"{len(files)} files {summary}: {shown}" + (f"; {why}" if why else "")
            raise DataFormatError(files[0].parent, message)
        for path in files:
            self.skip_log.record(DataFormatError(path, f"{reason}: {why}" if why else reason))


def _mask_map(mask_values: str | None, mask_map: Mapping[Any, Any] | None) -> dict[int, int]:
    """The stored-value -> class mapping that ``mask_values`` and ``mask_map`` ask for."""
    if mask_values is not None and mask_values not in MASK_VALUES:
        raise ValueError(
            f"mask_values = {mask_values!r}: expected 'index' (stored values are the classes) "
            "or 'binary' (0 is background, 255 or 1 foreground)"
        )
    if mask_values == "binary":
        if mask_map:
            raise ValueError("mask_values: binary already maps 255 to 1; drop mask_map")
        return {BINARY_FOREGROUND: 1}
    mapping: dict[int, int] = {}
    for stored, index in (mask_map or {}).items():
        try:
            pair = int(stored), int(index)
        except (TypeError, ValueError):
            raise ValueError(
                f"mask_map maps {stored!r} to {index!r}; expected stored values and classes "
                "as whole numbers, e.g. {255: 1}"
            ) from None
        if min(pair) < 0:
            raise ValueError(f"mask_map maps {stored!r} to {index!r}; both must be >= 0")
        mapping[pair[0]] = pair[1]
    return mapping


def _files_by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """Files directly in ``folder`` with one of ``suffixes``, by stem; a repeated stem raises."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in files:
                raise DataFormatError(path, f"has the same stem as '{files[path.stem]}'")
            files[path.stem] = path
    return files


def folder_splits(root: str | Path) -> tuple[str, ...]:
    """The splits of a folder data set at ``root``: the sub-folders of ``images/`` and the
    folders that hold an ``images/`` folder, sorted; ``("all",)`` when ``images/`` has no
    sub-folders; ``()`` when there is no ``images/`` at all. Hidden folders are not splits."""
    root = Path(root)
    images = root / "images"
    names: set[str] = set()
    if images.is_dir():
        names |= {path.name for path in images.iterdir() if path.is_dir()}
    if root.is_dir():
        names |= {path.name for path in root.iterdir() if (path / "images").is_dir()}
    names = {name for name in names if not name.startswith(".")}
    if names:
        return tuple(sorted(names))
    return (ALL_SPLIT,) if images.is_dir() else ()


def split_folders(
    root: str | Path | None, split: str, images: Any = None, masks: Any = None
) -> tuple[Path, Path]:
    """The images and masks folders of ``split`` (see ``FOLDER_LAYOUT``).

    ``images`` and ``masks`` (both or neither), relative to ``root``: a path with ``{split}`` in
    it, or a mapping from split names to paths. Otherwise ``images/{split}`` or
    ``{split}/images`` (and its ``masks``) under ``root``; ``split="all"`` takes ``images/``
    and ``masks/`` themselves when they have no split folders. A split that would silently read
    the same files as every other split is refused.
    """
    base = Path() if root is None else Path(root)
    if images is not None or masks is not None:
        if images is None or masks is None:
            given, missing = ("images", "masks") if masks is None else ("masks", "images")
            raise ValueError(f"the option {given} is set but not {missing}; set both")
        return _named_folder(base, images, split, "images"), _named_folder(
            base, masks, split, "masks"
        )
    root = require_path(base, FOLDER_LAYOUT)
    for image_folder, mask_folder in (
        (root / "images" / split, root / "masks" / split),
        (root / split / "images", root / split / "masks"),
    ):
        if image_folder.is_dir():
            return image_folder, mask_folder
    splits = folder_splits(root)
    if splits == (ALL_SPLIT,) and split == ALL_SPLIT:
        return root / "images", root / "masks"
    if splits == (ALL_SPLIT,):
        raise layout_error(
            f"'{root / 'images'}' has no split folders, so split '{split}' would be all its "
            "images, the same as every other split; put each split in images/{split}/ and "
            f"masks/{{split}}/, or use split '{ALL_SPLIT}' for the whole folder",
            FOLDER_LAYOUT,
        )
    if splits:
        raise layout_error(
            f"folder data set '{root}' has no split '{split}'; its splits are {', '.join(splits)}",
            FOLDER_LAYOUT,
        )
    raise layout_error(
        f"'{root}' holds neither images/{split}/ nor {split}/images/ nor images/", FOLDER_LAYOUT
    )


def _named_folder(base: Path, value: Any, split: str, option: str) -> Path:
    """The folder that option ``images`` or ``masks`` gives for ``split``."""
    if isinstance(value, Mapping):
        if split not in value:
            raise ValueError(
                f"the option {option} names folders for the splits {', '.join(map(str, value))}, "
                f"not for split '{split}'"
            )
        return base / str(value[split])
    text = str(value)
    if "{split}" in text:
        return base / text.replace("{split}", split)
    if split == ALL_SPLIT:
        return base / text
    raise ValueError(
        f"the option {option} = '{text}' names no split, so split '{split}' would read the same "
        f"files as every other split; write '{text}/{{split}}' (any path with {{split}} in it), "
        f"a mapping from split names to folders, or use split '{ALL_SPLIT}'"
    )


@DATASETS.register("folder")
def build_folder(
    root: str | Path | None,
    split: str = "train",
    transforms: Transforms | None = None,
    images: Any = None,
    masks: Any = None,
    **options: Any,
) -> ImageMaskFolder:
    """``ImageMaskFolder`` of split ``split``'s folders under ``root`` (see
    :func:`split_folders` for the layouts and the ``images``/``masks`` options)."""
    image_folder, mask_folder = split_folders(root, split, images, masks)
    return ImageMaskFolder(image_folder, mask_folder, transforms=transforms, **options)
