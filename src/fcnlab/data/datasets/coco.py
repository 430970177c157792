"""COCO 2017 (Lin et al., ECCV 2014): ``instances_{split}2017.json`` read as two task views.

- segmentation: the instance annotations merged into one class map per image;
- detection: their boxes.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from fcnlab.data.base import (
    DetectionDataset,
    FileDataset,
    Sample,
    SegmentationDataset,
    Transforms,
    check_split,
)
from fcnlab.data.io import DataFormatError, require_path
from fcnlab.data.palettes import (
    COCO_CATEGORIES,
    COCO_IDS_OF_VOC_CLASSES,
    VOC_CLASSES,
    voc_palette,
)
from fcnlab.data.registry import DATASETS
from fcnlab.data.targets import Target, check_boxes, make_target, select_instances

COCO_LAYOUT = """\
coco/                                   <- root
├── train2017/000000000009.jpg
├── val2017/000000000139.jpg
└── annotations/instances_{train,val}2017.json
"""

CATEGORY_SETS = ("voc", "all")
OVERLAP_RULES = ("category", "torchvision")


class COCOImages(FileDataset):
    """What COCO's task views share: a split's pycocotools index (``coco``), the kept categories
    (``category_index``: category id -> class index) and the images (``image_ids``, in id
    order)."""

    splits = ("train", "val")
    coco: COCO
    category_index: dict[int, int]
    image_ids: list[int]

    def open_split(
        self, root: str | Path, split: str, categories: str, first_class: int, drop_empty: bool
    ) -> tuple[list[Sample], tuple[str, ...]]:
        """Index ``root``'s ``split``: returns the ``(image, annotation file)`` samples and the
        names of the kept categories, whose classes are numbered from ``first_class``."""
        root = require_path(Path(root), COCO_LAYOUT)
        check_split(type(self), split)
        category_ids, names = coco_categories(categories)
        annotation_file = root / "annotations" / f"instances_{split}2017.json"
        self.coco = load_coco(require_path(annotation_file, COCO_LAYOUT, "annotation file"))
        self.category_index = {cat: first_class + k for k, cat in enumerate(category_ids)}
        self.image_ids = sorted(self.coco.imgs)
        if drop_empty:
            self.image_ids = [i for i in self.image_ids if self.annotations(i)]
        image_folder = require_path(root / f"{split}2017", COCO_LAYOUT, "image folder")
        samples = [
            (image_folder / self.coco.imgs[i]["file_name"], annotation_file) for i in self.image_ids
        ]
        return samples, names

    def annotations(self, image_id: int) -> list[dict[str, Any]]:
        """The annotations of ``image_id`` whose category is kept."""
        return [
            annotation
            for annotation in self.coco.imgToAnns[image_id]
            if annotation["category_id"] in self.category_index
        ]


def coco_categories(categories: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The COCO category ids that ``categories`` keeps, in class order, and their class names:
    ``"voc"``, the 20 VOC classes in VOC's order (VOC's names); ``"all"``, the 80 thing
    categories in id order."""
    _check_choice("categories", categories, CATEGORY_SETS)
    if categories == "voc":
        return COCO_IDS_OF_VOC_CLASSES, VOC_CLASSES[1:]
    ids = tuple(sorted(COCO_CATEGORIES))
    return ids, tuple(COCO_CATEGORIES[cat] for cat in ids)


@DATASETS.register("coco")
class COCOSegmentation(COCOImages, SegmentationDataset):
    """COCO images with a semantic mask drawn from their instance annotations.

    ``categories="voc"`` keeps the 20 VOC categories as VOC's class indices (every other object is
    background); ``"all"`` maps the 80 thing categories, in id order, to 1..80. Masks are decoded
    by pycocotools from polygons and from compressed or uncompressed RLE.

    ``overlap="category"``: a pixel covered by annotations of two or more different categories is
    255 (its class is ambiguous), and so is the whole area of every crowd annotation.
    ``overlap="torchvision"`` follows torchvision's segmentation reference script instead, so its
    published COCO numbers can be compared: a pixel covered by two or more annotations is 255, and
    crowd annotations count as ordinary ones. ``drop_empty=True`` drops images without any
    annotation of a kept category (for training).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Transforms | None = None,
        categories: str = "voc",
        overlap: str = "category",
        drop_empty: bool = False,
        skip_invalid: bool = False,
    ) -> None:
        _check_choice("overlap", overlap, OVERLAP_RULES)
        self.overlap = overlap
        samples, names = self.open_split(root, split, categories, 1, drop_empty)
        classes = ("background", *names)
        super().__init__(samples, classes, voc_palette(len(classes)), transforms, skip_invalid)

    def load_mask(self, index: int) -> torch.Tensor:
        """The semantic mask of sample ``index``, drawn from its annotations."""
        image_id = self.image_ids[index]
        annotations = self.annotations(image_id)
        try:
            instance_masks = [self.coco.annToMask(annotation) for annotation in annotations]
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise DataFormatError(
                self.samples[index][1],
                f"cannot decode the annotations of image {image_id} "
                f"('{self.samples[index][0].name}'): {error!r}",
            ) from None
        info = self.coco.imgs[image_id]
        mask = merge_instance_masks(
            instance_masks,
            [self.category_index[a["category_id"]] for a in annotations],
            [bool(a.get("iscrowd", 0)) for a in annotations],
            (info["height"], info["width"]),
            self.overlap,
            self.ignore_index,
        )
        return torch.from_numpy(mask)


@DATASETS.register("coco", task="detection")
class COCODetection(COCOImages, DetectionDataset):
    """COCO images with the boxes of their instance annotations.

    ``categories="all"`` gives the 80 thing categories as classes 0..79 in category-id order;
    ``"voc"`` keeps the 20 VOC categories as VOC's object classes 0..19 (other objects are left
    out). ``bbox`` ``[x, y, w, h]`` becomes ``(x, y, x + w, y + h)``. Crowd annotations are kept
    with ``iscrowd = 1`` (targets never make them positives; COCOeval ignores detections on them).
    Images without annotations are kept as negatives unless ``drop_empty=True``. ``image_id`` is
    COCO's image id. An annotation whose category the file does not declare, or whose box is
    missing, negative or outside its image, raises naming the file, the annotation id and the
    image; boxes of zero width or height are left out.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable[..., Any] | None = None,
        categories: str = "all",
        drop_empty: bool = False,
        skip_invalid: bool = False,
    ) -> None:
        samples, classes = self.open_split(root, split, categories, 0, drop_empty)
        super().__init__(samples, classes, transforms, skip_invalid)

    def load_target(self, index: int) -> Target:
        """The kept annotations of sample ``index`` as a target, boxes checked against the
        size its image record gives."""
        image_id = self.image_ids[index]
        path = self.samples[index][1]
        image = f"image {image_id} ('{self.samples[index][0].name}')"
        record = self.coco.imgs[image_id]
        if not isinstance(record.get("height"), int) or not isinstance(record.get("width"), int):
            raise DataFormatError(path, f"{image} has no integer height and width")
        boxes, labels, crowd, names = [], [], [], []
        for annotation in self.coco.imgToAnns[image_id]:
            where = f"annotation {annotation.get('id')} of {image}"
            category = annotation.get("category_id")
            if category not in self.coco.cats:
                raise DataFormatError(
                    path, f"{where}: category id {category} is not among the file's categories"
                )
            if category not in self.category_index:
                continue
            bbox = annotation.get("bbox")
            if not _is_box(bbox):
                raise DataFormatError(path, f"{where}: bbox {bbox!r} is not [x, y, width, height]")
            x, y, w, h = (float(v) for v in bbox)
            boxes.append([x, y, x + w, y + h])
            labels.append(self.category_index[category])
            crowd.append(int(bool(annotation.get("iscrowd", 0))))
            names.append(f"{where}, bbox [{x:g}, {y:g}, {w:g}, {h:g}]")
        size = (record["height"], record["width"])
        clipped, keep = check_boxes(
            torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), size, path, names
        )
        return select_instances(make_target(clipped, labels, image_id, size, iscrowd=crowd), keep)


def merge_instance_masks(
    masks: Sequence[np.ndarray],
    labels: Sequence[int],
    crowd: Sequence[bool],
    size: tuple[int, int],
    overlap: str = "category",
    ignore_index: int = 255,
) -> np.ndarray:
    """One int64 ``(H, W)`` class map from binary instance masks and their class labels (>= 1).

    ``overlap`` chooses how overlaps and crowds become ``ignore_index`` (see
    :class:`COCOSegmentation`). Pixels outside every mask are background (0).
    """
    _check_choice("overlap", overlap, OVERLAP_RULES)
    target = np.zeros(size, dtype=np.int64)
    if overlap == "torchvision":
        covered = np.zeros(size, dtype=np.int64)
        for mask, label in zip(masks, labels, strict=True):
            covered += mask > 0
            target[mask > 0] = np.maximum(target[mask > 0], label)
        target[covered > 1] = ignore_index
        return target
    conflict = np.zeros(size, dtype=bool)
    for mask, label, is_crowd in zip(masks, labels, crowd, strict=True):
        if not is_crowd:
            inside = mask > 0
            conflict |= inside & (target != 0) & (target != label)
            target[inside] = label
    target[conflict] = ignore_index
    for mask, is_crowd in zip(masks, crowd, strict=True):
        if is_crowd:
            target[mask > 0] = ignore_index
    return target


def load_coco(annotation_file: Path) -> COCO:
    """A pycocotools index of ``annotation_file``, without its progress prints."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(annotation_file))
    except (json.JSONDecodeError, UnicodeDecodeError, AssertionError) as error:
        raise DataFormatError(annotation_file, f"is not a COCO annotation file: {error}") from None
    except KeyError as error:
        raise DataFormatError(
            annotation_file, f"is not a COCO annotation file: an entry lacks the field {error}"
        ) from None
    except TypeError as error:
        raise DataFormatError(
            annotation_file, f"is not a COCO annotation file: an entry has the wrong type ({error})"
        ) from None
    unknown = sorted(set(coco.cats) - set(COCO_CATEGORIES))
    if unknown:
        raise DataFormatError(
            annotation_file, f"category ids {unknown} are not among COCO's 80 thing categories"
        )
    return coco


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}")


def _is_box(value: object) -> bool:
    """Whether ``value`` is a list of four numbers."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
