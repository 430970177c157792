"""Pascal VOC 2012 segmentation, optionally augmented with SBD (Hariharan et al., ICCV 2011)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.data.base import SegmentationDataset, Transforms, check_split
from fcnlab.data.io import DataFormatError, read_mask, require_path, validate_mask
from fcnlab.data.palettes import VOC_CLASSES, voc_palette
from fcnlab.data.registry import DATASETS

VOC_LAYOUT = """\
VOCdevkit/VOC2012/                      <- root
├── JPEGImages/2007_000032.jpg
├── SegmentationClass/2007_000032.png   (palette PNG: class indices, 255 = border)
└── ImageSets/Segmentation/{train,val,trainval}.txt
"""

SBD_LAYOUT = """\
benchmark_RELEASE/dataset/              <- sbd_root
├── cls/2008_000002.mat                 (struct GTcls with field Segmentation)
└── img/2008_000002.jpg                 (read when VOC's JPEGImages/ lacks the image)
"""


@DATASETS.register("voc")
class VOCSegmentation(SegmentationDataset):
    """VOC 2012: 21 classes (background + 20), the 255 border around objects kept as ignore.

    ``sbd_root`` adds every SBD image (``cls/*.mat``) that is not in VOC's ``val`` list, the usual
    "train_aug" set (10,582 images with ``split="train"``). Where VOC has its own annotation for
    an image, that one is used: it is the official one and marks uncertain borders. Reading SBD
    needs scipy (``pip install 'fcnlab[sbd]'``).
    """

    splits = ("train", "val", "trainval")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Transforms | None = None,
        sbd_root: str | Path | None = None,
        skip_invalid: bool = False,
    ) -> None:
        root = require_path(Path(root), VOC_LAYOUT)
        check_split(type(self), split)
        ids = read_split_list(root, split)
        samples = [
            (root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png") for i in ids
        ]
        if sbd_root is not None:
            if split == "val":
                raise ValueError(
                    "SBD images are for training; do not pass sbd_root with split='val'"
                )
            samples += sbd_samples(
                root, Path(sbd_root), exclude={*ids, *read_split_list(root, "val")}
            )
        super().__init__(
            samples, VOC_CLASSES, voc_palette(len(VOC_CLASSES)), transforms, skip_invalid
        )

    def load_mask(self, index: int) -> torch.Tensor:
        """A VOC palette PNG or an SBD ``.mat``, as class indices."""
        path = self.samples[index][1]
        mask = read_sbd_mask(path) if path.suffix == ".mat" else read_mask(path)
        return validate_mask(mask, self.num_classes, self.ignore_index, path)


def read_split_list(
    root: Path, split: str, folder: str = "Segmentation", layout: str = VOC_LAYOUT
) -> list[str]:
    """Image ids listed in ``ImageSets/{folder}/{split}.txt`` (``Main`` for detection); a missing
    list is reported with ``layout``."""
    path = require_path(root / "ImageSets" / folder / f"{split}.txt", layout, "split list")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def sbd_samples(voc_root: Path, sbd_root: Path, exclude: set[str]) -> list[tuple[Path, Path]]:
    """SBD samples whose id is not in ``exclude``; images from VOC when it has them."""
    _import_loadmat()
    masks = sorted(require_path(sbd_root / "cls", SBD_LAYOUT, "SBD folder").glob("*.mat"))
    samples = []
    for mask in masks:
        if mask.stem in exclude:
            continue
        image = voc_root / "JPEGImages" / f"{mask.stem}.jpg"
        samples.append((image if image.exists() else sbd_root / "img" / image.name, mask))
    return samples


def read_sbd_mask(path: str | Path) -> torch.Tensor:
    """The ``GTcls.Segmentation`` class map of an SBD ``cls/*.mat`` file, int64 ``(H, W)``."""
    loadmat = _import_loadmat()
    try:
        contents = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # scipy fails on bad files with many error types
        raise DataFormatError(path, f"cannot read SBD mask: {error!r}") from None
    try:
        segmentation = contents["GTcls"].Segmentation
    except (KeyError, AttributeError):
        raise DataFormatError(path, "SBD mask has no GTcls.Segmentation") from None
    return torch.from_numpy(np.asarray(segmentation).astype(np.int64))


def _import_loadmat() -> Callable[..., dict[str, Any]]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError(
            "reading SBD's .mat masks needs scipy: pip install 'fcnlab[sbd]'"
        ) from None
    return loadmat
