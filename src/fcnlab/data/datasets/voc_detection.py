"""Pascal VOC detection (Everingham et al., IJCV 2010): the devkit's ``Annotations/*.xml``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fcnlab.data.base import check_split
from fcnlab.data.datasets.voc import read_split_list
from fcnlab.data.detection import DetectionDataset, Target, check_boxes, make_target, select_boxes
from fcnlab.data.io import DataFormatError, require_path
from fcnlab.data.palettes import VOC_CLASSES
from fcnlab.data.registry import DETECTION_DATASETS

VOC_DETECTION_LAYOUT = """\
VOCdevkit/VOC2012/                      <- root (or VOC2007)
├── JPEGImages/2007_000027.jpg
├── Annotations/2007_000027.xml         (size, object/name, difficult, bndbox xmin..ymax)
└── ImageSets/Main/{train,val,trainval,test}.txt
"""

# The 20 object classes, 0-based: the segmentation classes without the background.
VOC_OBJECT_CLASSES = VOC_CLASSES[1:]
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


@DETECTION_DATASETS.register("voc")
class VOCDetection(DetectionDataset):
    """VOC 2007/2012 boxes of the 20 object classes (``VOC_CLASSES`` without the background).

    The devkit stores ``xmin..xmax`` as 1-based, inclusive pixel indices; they become 0-based
    pixel edges as in torchvision and mmdetection: ``x1 = xmin - 1``, ``x2 = xmax`` (likewise for
    y), so the box spans ``xmax - xmin + 1`` pixels. Objects marked ``difficult`` are kept with
    ``difficult = 1`` (evaluation ignores them, see :func:`fcnlab.detection_eval.voc_ap50`);
    ``keep_difficult=False`` leaves them out. ``image_id`` is the sample's position in the
    split list (``ids[image_id]`` is its VOC id). Objects are numbered from 1 in file order in
    error messages.
    """

    splits = ("train", "val", "trainval", "test")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable[..., Any] | None = None,
        keep_difficult: bool = True,
        skip_invalid: bool = False,
    ) -> None:
        root = require_path(Path(root), VOC_DETECTION_LAYOUT)
        check_split(type(self), split)
        self.ids = read_split_list(root, split, "Main", VOC_DETECTION_LAYOUT)
        samples = [
            (root / "JPEGImages" / f"{i}.jpg", root / "Annotations" / f"{i}.xml") for i in self.ids
        ]
        self.keep_difficult = keep_difficult
        self.class_index = {name: k for k, name in enumerate(VOC_OBJECT_CLASSES)}
        super().__init__(samples, VOC_OBJECT_CLASSES, transforms, skip_invalid)

    def load_target(self, index: int) -> Target:
        """The boxes of ``Annotations/{id}.xml``, checked against the size it records."""
        path = self.samples[index][1]
        root = parse_xml(path)
        height, width = (
            int(_number(root, f"size/{tag}", path, "the annotation")) for tag in ("height", "width")
        )
        objects = root.findall("object")
        boxes, labels, difficult, names = [], [], [], []
        for number, element in enumerate(objects, start=1):
            where = f"object {number}"
            name = _text(element, "name", path, where)
            if name not in self.class_index:
                raise DataFormatError(
                    path, f"{where}: class {name!r} is not one of the 20 VOC classes"
                )
            xmin, ymin, xmax, ymax = (
                _number(element, f"bndbox/{tag}", path, f"{where} ({name!r})") for tag in BOX_TAGS
            )
            boxes.append([xmin - 1, ymin - 1, xmax, ymax])
            labels.append(self.class_index[name])
            flag = element.find("difficult")
            difficult.append(0 if flag is None else int(_number(element, "difficult", path, where)))
            names.append(
                f"{where} ({name!r}, xmin {xmin:g} ymin {ymin:g} xmax {xmax:g} ymax {ymax:g})"
            )
        clipped, keep = check_boxes(
            torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), (height, width), path, names
        )
        target = make_target(clipped, labels, index, (height, width), difficult=difficult)
        if not self.keep_difficult:
            keep &= target["difficult"] == 0
        return select_boxes(target, keep)


def parse_xml(path: Path) -> ET.Element:
    """The root element of an XML file; a missing or malformed file raises ``DataFormatError``."""
    if not path.is_file():
        raise DataFormatError(path, "annotation file does not exist")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as error:
        raise DataFormatError(path, f"is not valid XML: {error}") from None


def _text(element: ET.Element, tag: str, path: Path, where: str) -> str:
    """The stripped text of ``element/tag``; missing or empty raises naming ``where``."""
    found = element.find(tag)
    if found is None or not (found.text or "").strip():
        raise DataFormatError(path, f"{where} has no <{tag}>")
    return (found.text or "").strip()


def _number(element: ET.Element, tag: str, path: Path, where: str) -> float:
    """``element/tag`` as a number (the devkit's files hold integers, a few hold decimals)."""
    text = _text(element, tag, path, where)
    try:
        return float(text)
    except ValueError:
        raise DataFormatError(path, f"{where}: <{tag}> is {text!r}, not a number") from None
