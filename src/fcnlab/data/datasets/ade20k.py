"""ADE20K as released for the SceneParsing challenge (Zhou et al., CVPR 2017): 150 classes."""

from __future__ import annotations

from pathlib import Path

import torch

from fcnlab.data.base import SegmentationDataset, Transforms, check_split, find_files
from fcnlab.data.io import label_table, map_labels, read_mask, require_path
from fcnlab.data.palettes import ADE20K_CLASSES, ADE20K_PALETTE
from fcnlab.data.registry import DATASETS

ADE20K_LAYOUT = """\
ADEChallengeData2016/                   <- root
├── images/{training,validation}/ADE_train_00000001.jpg
└── annotations/{training,validation}/ADE_train_00000001.png   (0 = other, 1..150 = classes)
"""

FOLDERS = {"train": "training", "val": "validation"}

# reduce_zero_label: 0 ("other objects") is not a class, so it is ignored and 1..150 become 0..149.
_REDUCE_ZERO_LABEL = label_table({0: 255, **{i: i - 1 for i in range(1, len(ADE20K_CLASSES) + 1)}})


@DATASETS.register("ade20k")
class ADE20K(SegmentationDataset):
    """ADE20K SceneParsing: label 0 becomes ignore and labels 1..150 become classes 0..149."""

    splits = tuple(FOLDERS)

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Transforms | None = None,
        skip_invalid: bool = False,
    ) -> None:
        root = require_path(Path(root), ADE20K_LAYOUT)
        check_split(type(self), split)
        images = find_files(root / "images" / FOLDERS[split], "*.jpg", ADE20K_LAYOUT)
        masks = root / "annotations" / FOLDERS[split]
        samples = [(image, masks / f"{image.stem}.png") for image in images]
        super().__init__(samples, ADE20K_CLASSES, ADE20K_PALETTE, transforms, skip_invalid)

    def load_mask(self, index: int) -> torch.Tensor:
        """Classes 0..149 and 255 of sample ``index``."""
        path = self.samples[index][1]
        return map_labels(read_mask(path), _REDUCE_ZERO_LABEL, path)
