"""COCO 2017 detection (Lin et al., ECCV 2014): the boxes of ``instances_{split}2017.json``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fcnlab.data.datasets.coco import COCOImages
from fcnlab.data.detection import DetectionDataset, Target, check_boxes, make_target, select_boxes
from fcnlab.data.io import DataFormatError
from fcnlab.data.registry import DETECTION_DATASETS


@DETECTION_DATASETS.register("coco")
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
        return select_boxes(make_target(clipped, labels, image_id, size, iscrowd=crowd), keep)


def _is_box(value: object) -> bool:
    """Whether ``value`` is a list of four numbers."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
