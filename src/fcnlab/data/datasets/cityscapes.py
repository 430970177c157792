"""Cityscapes fine annotations (Cordts et al., CVPR 2016), evaluated on its 19 training classes."""

from __future__ import annotations

from pathlib import Path

import torch

from fcnlab.data.base import SegmentationDataset, Transforms, check_split, find_files
from fcnlab.data.io import label_table, map_labels, read_mask, require_path
from fcnlab.data.palettes import CITYSCAPES_CLASSES, CITYSCAPES_ID_TO_TRAIN_ID, CITYSCAPES_PALETTE
from fcnlab.data.registry import DATASETS

CITYSCAPES_LAYOUT = """\
cityscapes/                                          <- root
├── leftImg8bit/{train,val,test}/aachen/aachen_000000_000019_leftImg8bit.png
└── gtFine/{train,val,test}/aachen/aachen_000000_000019_gtFine_labelIds.png
                                  (and, if made by createTrainIdLabelImgs, *_labelTrainIds.png)
"""

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"

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
    stem = image.name.removesuffix(IMAGE_SUFFIX)
    folder = root / "gtFine" / split / image.parent.name
    train_ids = folder / f"{stem}{TRAIN_IDS_SUFFIX}"
    return train_ids if train_ids.exists() else folder / f"{stem}{LABEL_IDS_SUFFIX}"
