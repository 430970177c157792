"""``FileDataset``: the shared body of every file-backed data set, and the bases of its task
views, ``SegmentationDataset``, ``DetectionDataset`` and ``InstanceDataset``.

A data set is a list of ``(image_path, annotation_path)`` samples plus its classes; indexing, joint
transforms, checking every file, skipping invalid ones and reading decoded samples from an
in-memory cache (:mod:`fcnlab.data.cache`) live here once. A segmentation view
finds ``(image_path, mask_path)`` samples in its layout and, where its files store something other
than class indices, overrides :meth:`SegmentationDataset.load_mask`; a detection view reads its
annotation format into a target dict (:mod:`fcnlab.data.targets`) in
:meth:`DetectionDataset.load_target`; an instance view reads one mask per object in
:meth:`InstanceDataset.load_instances`, and the boxes are derived from the masks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from fcnlab.data.io import (
    DataFormatError,
    Problem,
    SkipLog,
    check_same_size,
    layout_error,
    pixels_to_image,
    read_mask,
    read_pixels,
    require_path,
    validate_mask,
)
from fcnlab.data.targets import Target, make_instance_target

if TYPE_CHECKING:
    from fcnlab.data.cache import DecodedCache

Sample = tuple[Path, Path]
# Added to an error met while loading a sample: a bad file found by training or evaluation is
# rarely the only one, and the run meets them one by one (or never, in a dropped last batch).
CHECK_ADVICE = (
    "`fcnlab datasets check` lists every such file of a data set at once, "
    "and data.options.skip_invalid: true skips them"
)
Transforms = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class FileDataset(Dataset):
    """The shared body of a data set of ``(image_path, annotation_path)`` samples.

    A subclass says how to ``decode(index)`` one sample from its files: the image's integer
    pixels (:func:`~fcnlab.data.io.read_pixels`) and the checked annotation, raising
    :class:`~fcnlab.data.io.DataFormatError` for a file that cannot be used. ``ds[i]`` takes the
    decoded sample from ``cache`` when one is filled (:func:`fcnlab.data.cache.cache_dataset`)
    and from the files otherwise, scales the pixels to [0, 1] and applies
    ``transforms(image, annotation)`` to both at once. With ``skip_invalid=True`` an invalid
    sample is logged, counted in ``skipped`` and the next valid sample is returned in its place.
    """

    # The split names a subclass accepts (checked by ``check_split``).
    splits: tuple[str, ...] = ()

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        transforms: Callable[..., Any] | None = None,
        skip_invalid: bool = False,
    ) -> None:
        self.samples = list(samples)
        self.classes = tuple(classes)
        self.transforms = transforms
        self.skip_invalid = skip_invalid
        self.skip_log = SkipLog()
        # The decoded samples in memory, when data.cache filled them; None: read the files.
        self.cache: DecodedCache | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes (an ignore index not counted)."""
        return len(self.classes)

    @property
    def skipped(self) -> int:
        """How many invalid files were skipped so far (in this process)."""
        return len(self.skip_log)

    def __len__(self) -> int:
        return len(self.samples)

    def decode(self, index: int) -> tuple[torch.Tensor, Any]:
        """Sample ``index`` as decoded from its files, before transforms: the image's pixels
        (uint8 ``(3, H, W)``, see :func:`~fcnlab.data.io.read_pixels`) and the annotation;
        raises ``DataFormatError`` for a bad file."""
        raise NotImplementedError

    def load(self, index: int) -> tuple[torch.Tensor, Any]:
        """Sample ``index`` from its files before transforms, the image float32 ``(3, H, W)``
        in [0, 1]; raises ``DataFormatError`` for a bad file."""
        pixels, annotation = self.decode(index)
        return pixels_to_image(pixels), annotation

    def decoded(self, index: int) -> tuple[torch.Tensor, Any]:
        """:meth:`decode` of sample ``index``, from ``cache`` when one is filled."""
        return self.decode(index) if self.cache is None else self.cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        if not self.skip_invalid:
            try:
                pixels, annotation = self.decoded(index)
            except DataFormatError as error:
                raise DataFormatError(error.file, f"{error.reason}; {CHECK_ADVICE}") from None
        else:
            pixels, annotation = self._next_valid(index)
        image = pixels_to_image(pixels)
        if self.transforms is not None:
            image, annotation = self.transforms(image, annotation)
        return image, annotation

    def _next_valid(self, index: int) -> tuple[torch.Tensor, Any]:
        """Decoded sample ``index`` or, if it is invalid, the first valid sample after it
        (wrapping)."""
        for offset in range(len(self)):
            try:
                return self.decoded((index + offset) % len(self))
            except DataFormatError as error:
                self.skip_log.record(error)
        raise DataFormatError(self.samples[index][0].parent, f"all {len(self)} samples are invalid")

    def check(
        self, progress: Callable[[Iterable[int]], Iterable[int]] | None = None
    ) -> list[Problem]:
        """Load every sample and return the problems found (file, reason), one per bad sample.

        ``progress`` wraps the index range, e.g. ``rich.progress.track``.
        """
        indices: Iterable[int] = range(len(self))
        problems = []
        for index in progress(indices) if progress is not None else indices:
            try:
                self.load(index)
            except DataFormatError as error:
                problems.append(Problem(error.file, error.reason))
        return problems

    def classes_note(self, expected: int) -> str:
        """Why this data set has ``num_classes`` classes rather than ``expected`` (a model's),
        naming the files where it can; "" when the count needs no explanation."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples, {self.num_classes} classes)"


class SegmentationDataset(FileDataset):
    """``ds[i]`` is ``(image, mask)``: float32 ``(3, H, W)`` in [0, 1] and int64 ``(H, W)``.

    ``transforms(image, mask) -> (image, mask)`` is applied to both at once. A file that cannot
    be used raises :class:`~fcnlab.data.io.DataFormatError` naming it; with ``skip_invalid=True``
    it is logged, counted in ``skipped`` and the next valid sample is returned in its place.
    """

    task = "segmentation"

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: Sequence[str],
        palette: np.ndarray,
        transforms: Transforms | None = None,
        skip_invalid: bool = False,
        ignore_index: int = 255,
    ) -> None:
        super().__init__(samples, classes, transforms, skip_invalid)
        self.palette = np.asarray(palette, dtype=np.uint8)
        self.ignore_index = ignore_index

    def load_mask(self, index: int) -> torch.Tensor:
        """The mask of sample ``index`` as class indices, int64 ``(H, W)``, values checked."""
        path = self.samples[index][1]
        return validate_mask(read_mask(path), self.num_classes, self.ignore_index, path)

    def decode(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixels and class indices of sample ``index``; raises ``DataFormatError`` for a bad
        file."""
        pixels, mask = read_pixels(self.samples[index][0]), self.load_mask(index)
        check_same_size(pixels, mask, *self.samples[index])
        return pixels, mask


class DetectionDataset(FileDataset):
    """``ds[i]`` is ``(image, target)`` (see :mod:`fcnlab.data.targets`) from ``(image_path,
    annotation_path)`` samples; a subclass reads its annotation format in :meth:`load_target`.

    ``transforms(image, target) -> (image, target)`` moves the boxes with the image (see
    :mod:`fcnlab.data.transforms`); ``image_size`` is set from the image it returns. An
    invalid file or annotation raises :class:`~fcnlab.data.io.DataFormatError` naming the file and
    the annotation; with ``skip_invalid=True`` the sample is logged and counted in ``skipped``,
    and the next valid one is returned in its place.
    """

    task = "detection"

    def load_target(self, index: int) -> Target:
        """The target of sample ``index`` before transforms, its boxes checked against the image
        size its annotation records (``orig_size``)."""
        raise NotImplementedError

    def decode(self, index: int) -> tuple[torch.Tensor, Target]:
        """Pixels and target of sample ``index``; raises ``DataFormatError`` for a bad file."""
        target = self.load_target(index)
        image_path, annotation_path = self.samples[index]
        pixels = read_pixels(image_path)
        found = (int(pixels.shape[1]), int(pixels.shape[2]))
        if found != target["orig_size"]:
            height, width = target["orig_size"]
            raise DataFormatError(
                annotation_path,
                f"records the image '{image_path}' as {height}x{width} but it is "
                f"{found[0]}x{found[1]} (height x width)",
            )
        return pixels, target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image, target = super().__getitem__(index)
        return image, {**target, "image_size": (int(image.shape[1]), int(image.shape[2]))}


class Instances(NamedTuple):
    """The objects an instance view reads for one image, before empty masks are left out.

    ``masks``: bool ``(K, H, W)`` at the size the annotation gives its image; ``labels``: the
    0-based object class of each; ``names``: how an error names each one (``annotation 7 of
    image 139 ('000000000139.jpg')``, ``instance 3``); ``iscrowd``: 0/1 per object (None: all 0).
    """

    masks: torch.Tensor
    labels: Sequence[int]
    names: Sequence[str]
    iscrowd: Sequence[int] | None = None


class InstanceDataset(DetectionDataset):
    """``ds[i]`` is ``(image, target)`` with one bool mask per object (``target["masks"]``
    ``(K, H, W)``, see :mod:`fcnlab.data.targets`); a subclass reads its annotation format in
    :meth:`load_instances`.

    The boxes are derived from the masks (:func:`~fcnlab.data.targets.make_instance_target`), so
    they never disagree with them; objects whose mask has no pixel are left out. Every mask must
    have its image's size: another size raises :class:`~fcnlab.data.io.DataFormatError` naming
    the annotation file and the first object (``mask of annotation 7 ... is 480x640 but its image
    '...' is 427x640``). The joint transforms move the masks with the image and recompute the
    boxes from the moved masks.
    """

    task = "instance"

    def load_instances(self, index: int) -> Instances:
        """The objects of sample ``index`` as its annotation gives them; raises
        ``DataFormatError`` naming the file and the annotation for one that breaks its format."""
        raise NotImplementedError

    def image_id(self, index: int) -> int:
        """The ``image_id`` of sample ``index``: its position (a format with ids overrides it)."""
        return index

    def load_target(self, index: int) -> Target:
        """The instance target of sample ``index`` before transforms, at its annotation's size."""
        found = self.load_instances(index)
        return make_instance_target(found.masks, found.labels, self.image_id(index), found.iscrowd)

    def decode(self, index: int) -> tuple[torch.Tensor, Target]:
        """Pixels and target of sample ``index``, its masks checked against its image's size;
        raises ``DataFormatError`` for a bad file."""
        found = self.load_instances(index)
        image_path, annotation_path = self.samples[index]
        pixels = read_pixels(image_path)
        check_instance_masks(pixels, found, image_path, annotation_path)
        target = make_instance_target(
            found.masks, found.labels, self.image_id(index), found.iscrowd
        )
        return pixels, target


def check_instance_masks(
    image: torch.Tensor, found: Instances, image_path: str | Path, annotation_path: str | Path
) -> None:
    """Raise :class:`DataFormatError` naming ``annotation_path`` and the first object when the
    masks ``(K, H, W)`` of ``found`` are not the image's size (with an image without objects,
    the size the annotation gives; :func:`~fcnlab.data.io.check_same_size` words it and says
    when the mask was drawn on the photo turned by its EXIF tag)."""
    try:
        check_same_size(image, found.masks, image_path, annotation_path)
    except DataFormatError as error:
        if not found.names or not error.reason.startswith("mask "):
            raise
        reason = f"mask of {found.names[0]} {error.reason.removeprefix('mask ')}"
        raise DataFormatError(error.file, reason) from None


def find_files(folder: Path, pattern: str, layout: str) -> list[Path]:
    """The files under ``folder`` matching the glob ``pattern``, sorted; none is an error."""
    files = sorted(require_path(folder, layout, "folder").glob(pattern))
    if not files:
        raise layout_error(f"no files matching '{pattern}' in '{folder}'", layout)
    return files


def check_split(dataset: type[FileDataset], split: str) -> None:
    """Raise ``ValueError`` unless ``split`` is one of ``dataset.splits``."""
    if split not in dataset.splits:
        raise ValueError(
            f"{dataset.__name__} has no split {split!r}; "
            f"expected one of {', '.join(dataset.splits)}"
        )
