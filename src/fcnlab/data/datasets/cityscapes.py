"""Cityscapes fine annotations (Cordts et al., CVPR 2016) read as two task views.

- segmentation: ``*_gtFine_labelIds.png`` mapped to the 19 evaluated training classes;
- instance: ``*_gtFine_instanceIds.png``, one mask per object of the 8 instance classes that
  cityscapesScripts evaluates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fcnlab.data.base import (
    InstanceDataset,
    Instances,
    SegmentationDataset,
    Transforms,
    check_split,
    find_files,
)
from fcnlab.data.io import (
    DataFormatError,
    abbreviated,
    label_table,
    map_labels,
    read_mask,
    require_path,
)
from fcnlab.data.palettes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_ID_TO_TRAIN_ID,
    CITYSCAPES_LABELS,
    CITYSCAPES_PALETTE,
)
from fcnlab.data.registry import DATASETS

CITYSCAPES_LAYOUT = """\
cityscapes/                                          <- root
├── leftImg8bit/{train,val,test}/aachen/aachen_000000_000019_leftImg8bit.png
└── gtFine/{train,val,test}/aachen/aachen_000000_000019_gtFine_labelIds.png
                                  (and, if made by createTrainIdLabelImgs, *_labelTrainIds.png;
                                   instance: *_gtFine_instanceIds.png, 16-bit)
"""

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"

INSTANCE_IDS_SUFFIX = "_gtFine_instanceIds.png"
# instanceIds store ``label_id * 1000 + k`` for object k of a class with instances.
INSTANCE_ID_BASE = 1000
# cityscapesScripts' labels.py: the labels with hasInstances are person .. bicycle (ids 24-33);
# caravan (29) and trailer (30) are also ignoreInEval, so the instance benchmark
# (evalInstanceLevelSemanticLabeling.py, its instLabels) evaluates the other 8.
CITYSCAPES_HAS_INSTANCES = frozenset(range(24, 34))
CITYSCAPES_INSTANCE_IDS: tuple[int, ...] = (24, 25, 26, 27, 28, 31, 32, 33)
CITYSCAPES_INSTANCE_CLASSES: tuple[str, ...] = tuple(
    next(label.name for label in CITYSCAPES_LABELS if label.id == label_id)
    for label_id in CITYSCAPES_INSTANCE_IDS
)
_LABEL_NAMES = {label.id: label.name for label in CITYSCAPES_LABELS if label.id >= 0}

_ID_TO_TRAIN_ID = label_table(CITYSCAPES_ID_TO_TRAIN_ID)
_TRAIN_IDS = label_table({**{i: i for i in range(len(CITYSCAPES_CLASSES))}, 255: 255})


@DATASETS.register("cityscapes")
class Cityscapes(SegmentationDataset):
    """Cityscapes ``gtFine``: labelIds mapped to the 19 trainIds of the official label table.

    Every other id (void, parking, guard rail, caravan, ...) becomes 255. A
    ``*_gtFine_labelTrainIds.png`` next to the labelIds file is used instead when present (it is
    what cityscapesScripts' ``createTrainIdLabelImgs`` writes).
    """

    splits = ("train", "val", "test")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Transforms | None = None,
        skip_invalid: bool = False,
    ) -> None:
        root = require_path(Path(root), CITYSCAPES_LAYOUT)
        check_split(type(self), split)
        images = find_files(root / "leftImg8bit" / split, f"*/*{IMAGE_SUFFIX}", CITYSCAPES_LAYOUT)
        samples = [(image, label_path(root, split, image)) for image in images]
        super().__init__(samples, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, transforms, skip_invalid)

    def load_mask(self, index: int) -> torch.Tensor:
        """trainIds of sample ``index``, from either label file."""
        path = self.samples[index][1]
        table = _TRAIN_IDS if path.name.endswith(TRAIN_IDS_SUFFIX) else _ID_TO_TRAIN_ID
        return map_labels(read_mask(path), table, path)


def label_path(root: Path, split: str, image: Path) -> Path:
    """The label file of ``image``: ``*_labelTrainIds.png`` if present, else ``*_labelIds.png``."""
    train_ids = gt_path(root, split, image, TRAIN_IDS_SUFFIX)
    return train_ids if train_ids.exists() else gt_path(root, split, image, LABEL_IDS_SUFFIX)


def gt_path(root: Path, split: str, image: Path, suffix: str) -> Path:
    """``gtFine/{split}/{city}/{stem}{suffix}``: the annotation file of kind ``suffix`` of the
    ``leftImg8bit`` image ``image``."""
    stem = image.name.removesuffix(IMAGE_SUFFIX)
    return root / "gtFine" / split / image.parent.name / f"{stem}{suffix}"


@DATASETS.register("cityscapes", task="instance")
class CityscapesInstances(InstanceDataset):
    """Cityscapes ``gtFine`` instances of the 8 evaluated classes (person, rider, car, truck, bus,
    train, motorcycle, bicycle; ``CITYSCAPES_INSTANCE_CLASSES``, 0-based).

    ``*_gtFine_instanceIds.png`` (16-bit) stores ``label_id * 1000 + k`` on the pixels of object
    ``k`` of a class with instances, and the plain label id (< 1000) everywhere else. Plain ids of
    the 8 classes mark groups (a crowd of people, a row of parked cars: "car group"): they are
    kept as one region per class flagged ``iscrowd = 1``, as cityscapesScripts' instance evaluation
    treats them (never ground truth to find; a prediction that falls on one is ignored, not a
    false positive) and as detectron2's Cityscapes loader reads them. Caravan and trailer objects
    (evaluation's ignoreInEval) and every class without instances (road, sky, ...) are left out.
    A value that is neither a label id nor ``label_id * 1000 + k`` of a class with instances
    raises :class:`~fcnlab.data.io.DataFormatError` naming the file. ``image_id`` is the sample's
    position (images sorted by city and name).
    """

    splits = ("train", "val", "test")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable[..., Any] | None = None,
        skip_invalid: bool = False,
    ) -> None:
        root = require_path(Path(root), CITYSCAPES_LAYOUT)
        check_split(type(self), split)
        images = find_files(root / "leftImg8bit" / split, f"*/*{IMAGE_SUFFIX}", CITYSCAPES_LAYOUT)
        samples = [(image, gt_path(root, split, image, INSTANCE_IDS_SUFFIX)) for image in images]
        super().__init__(samples, CITYSCAPES_INSTANCE_CLASSES, transforms, skip_invalid)

    def load_instances(self, index: int) -> Instances:
        """The objects and groups of the 8 classes in sample ``index``'s instanceIds file."""
        path = self.samples[index][1]
        ids = read_mask(path)
        values = [int(v) for v in torch.unique(ids)]
        check_instance_ids(values, path)
        kept = [v for v in values if _label_of(v) in CITYSCAPES_INSTANCE_IDS]
        masks = ids[None] == torch.tensor(kept, dtype=ids.dtype).reshape(-1, 1, 1)
        labels = [CITYSCAPES_INSTANCE_IDS.index(_label_of(v)) for v in kept]
        names = [
            f"instance {v} ({_LABEL_NAMES[_label_of(v)]}{' group' if v < INSTANCE_ID_BASE else ''})"
            for v in kept
        ]
        crowd = [int(v < INSTANCE_ID_BASE) for v in kept]
        return Instances(masks, labels, names, crowd)


def check_instance_ids(values: list[int], path: Path) -> None:
    """Raise :class:`DataFormatError` naming ``path`` for stored values that are neither a
    Cityscapes label id nor ``label_id * 1000 + k`` of a label with instances."""
    bad = [
        v
        for v in values
        if not (
            v in _LABEL_NAMES
            or (v >= INSTANCE_ID_BASE and v // INSTANCE_ID_BASE in CITYSCAPES_HAS_INSTANCES)
        )
    ]
    if bad:
        raise DataFormatError(
            path,
            f"instance ids {abbreviated(bad)} are neither Cityscapes label ids (0-33) nor "
            "label_id * 1000 + k of a class with instances (labels 24-33: person .. bicycle)",
        )


def _label_of(value: int) -> int:
    """The label id of an instanceIds value (``label_id * 1000 + k``, or a plain label id)."""
    return value // INSTANCE_ID_BASE if value >= INSTANCE_ID_BASE else value
