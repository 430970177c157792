"""Pascal VOC (Everingham et al., IJCV 2010): the devkit's folders read as two task views.

- segmentation: VOC 2012 ``SegmentationClass/`` class maps, optionally augmented with SBD
  (Hariharan et al., ICCV 2011);
- detection: VOC 2007/2012 ``Annotations/*.xml`` boxes;
- instance: VOC 2012 ``SegmentationObject/`` instance maps, each instance's class read from
  ``SegmentationClass/``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnlab.data.base import (
    DetectionDataset,
    FileDataset,
    InstanceDataset,
    Instances,
    Sample,
    SegmentationDataset,
    Transforms,
    check_split,
)
from fcnlab.data.io import DataFormatError, read_mask, require_path, validate_mask
from fcnlab.data.palettes import VOC_CLASSES, voc_palette
from fcnlab.data.registry import DATASETS
from fcnlab.data.targets import Target, check_boxes, make_target, select_instances

VOC_LAYOUT = """\
VOCdevkit/VOC2012/                      <- root (or VOC2007 for boxes)
├── JPEGImages/2007_000032.jpg
├── SegmentationClass/2007_000032.png   (segmentation: palette PNG, class indices, 255 = border)
├── SegmentationObject/2007_000032.png  (instance: palette PNG, instances 1..K, 255 = border)
├── Annotations/2007_000032.xml         (detection: size, object/name, difficult, bndbox)
└── ImageSets/{Segmentation,Main}/{train,val,trainval,test}.txt
"""

SBD_LAYOUT = """\
benchmark_RELEASE/dataset/              <- sbd_root
├── cls/2008_000002.mat                 (struct GTcls with field Segmentation)
└── img/2008_000002.jpg                 (read when VOC's JPEGImages/ lacks the image)
"""

# A colour mask in SegmentationClass/ has lost the devkit's palette indices (an editor or a
# converter saved its colours); the data set reads indices only, so the file must be restored.
VOC_COLOUR_ADVICE = (
    "VOC's SegmentationClass masks are palette ('P') PNGs whose stored values are the classes, "
    "so restore this file from the devkit or save it again as a palette PNG of class indices"
)
VOC_OBJECT_COLOUR_ADVICE = (
    "VOC's SegmentationObject masks are palette ('P') PNGs whose stored values number the "
    "instances (1..K, 0 background, 255 border), so restore this file from the devkit or save it "
    "again as a palette PNG of instance numbers"
)
# The 20 object classes, 0-based: the segmentation classes without the background.
VOC_OBJECT_CLASSES = VOC_CLASSES[1:]
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
# The border and void regions of SegmentationClass and SegmentationObject.
VOID = 255


class VOCImages(FileDataset):
    """What VOC's task views share: the devkit root and a split's image ids (``ids``), listed in
    ``ImageSets/{lists}/{split}.txt``, each paired with its annotation file."""

    root: Path
    ids: list[str]

    def open_split(
        self, root: str | Path, split: str, lists: str, folder: str, suffix: str
    ) -> list[Sample]:
        """Read ``split``'s ids from ``ImageSets/{lists}/``; returns the samples
        ``(JPEGImages/{id}.jpg, {folder}/{id}{suffix})``."""
        self.root = require_path(Path(root), VOC_LAYOUT)
        check_split(type(self), split)
        self.ids = read_split_list(self.root, split, lists)
        return [
            (self.root / "JPEGImages" / f"{i}.jpg", self.root / folder / f"{i}{suffix}")
            for i in self.ids
        ]


@DATASETS.register("voc")
class VOCSegmentation(VOCImages, SegmentationDataset):
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
        samples = self.open_split(root, split, "Segmentation", "SegmentationClass", ".png")
        if sbd_root is not None:
            if split == "val":
                raise ValueError(
                    "SBD images are for training; do not pass sbd_root with split='val'"
                )
            exclude = {*self.ids, *read_split_list(self.root, "val")}
            samples += sbd_samples(self.root, Path(sbd_root), exclude)
        super().__init__(
            samples, VOC_CLASSES, voc_palette(len(VOC_CLASSES)), transforms, skip_invalid
        )

    def load_mask(self, index: int) -> torch.Tensor:
        """A VOC palette PNG or an SBD ``.mat``, as class indices."""
        path = self.samples[index][1]
        if path.suffix == ".mat":
            mask = read_sbd_mask(path)
        else:
            mask = read_mask(path, colour_advice=VOC_COLOUR_ADVICE)
        return validate_mask(mask, self.num_classes, self.ignore_index, path)


@DATASETS.register("voc", task="detection")
class VOCDetection(VOCImages, DetectionDataset):
    """VOC 2007/2012 boxes of the 20 object classes (``VOC_CLASSES`` without the background).

    The devkit stores ``xmin..xmax`` as 1-based, inclusive pixel indices; they become 0-based
    pixel edges as in torchvision and mmdetection: ``x1 = xmin - 1``, ``x2 = xmax`` (likewise for
    y), so the box spans ``xmax - xmin + 1`` pixels. Objects marked ``difficult`` are kept with
    ``difficult = 1`` (evaluation ignores them, see
    :func:`fcnlab.tasks.detection.coco_eval.voc_ap50`); ``keep_difficult=False`` leaves them out.
    ``image_id`` is the sample's position in the split list (``ids[image_id]`` is its VOC id).
    Objects are numbered from 1 in file order in error messages.
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
        samples = self.open_split(root, split, "Main", "Annotations", ".xml")
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
        boxes, labels, difficult, names = [], [], [], []
        for number, element in enumerate(root.findall("object"), start=1):
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
        return select_instances(target, keep)


@DATASETS.register("voc", task="instance")
class VOCInstances(VOCImages, InstanceDataset):
    """VOC 2012 instance masks of the 20 object classes (``VOC_CLASSES`` without the background).

    ``SegmentationObject/{id}.png`` numbers the objects of an image 1..K (0 background, 255 the
    border and void regions around objects, which belong to no instance and are ignored); each
    object's class is the class that ``SegmentationClass/{id}.png`` gives its pixels (255 there
    counts for nothing). An object whose pixels carry more than one class, or none of the 20, raises
    :class:`~fcnlab.data.io.DataFormatError` naming the file and the instance. The images are
    those of ``ImageSets/Segmentation/{split}.txt``; ``image_id`` is the sample's position in that
    list (``ids[image_id]`` is its VOC id). VOC marks no crowds and no difficult objects in these
    files: both flags are 0.
    """

    splits = ("train", "val", "trainval")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable[..., Any] | None = None,
        skip_invalid: bool = False,
    ) -> None:
        samples = self.open_split(root, split, "Segmentation", "SegmentationObject", ".png")
        super().__init__(samples, VOC_OBJECT_CLASSES, transforms, skip_invalid)

    def load_instances(self, index: int) -> Instances:
        """The objects of ``SegmentationObject/{id}.png``, classed by ``SegmentationClass``."""
        object_path = self.samples[index][1]
        class_path = self.root / "SegmentationClass" / object_path.name
        objects = read_mask(object_path, colour_advice=VOC_OBJECT_COLOUR_ADVICE)
        classes = read_mask(class_path, colour_advice=VOC_COLOUR_ADVICE)
        if objects.shape != classes.shape:
            raise DataFormatError(
                class_path,
                f"mask is {classes.shape[0]}x{classes.shape[1]} but its instance mask "
                f"'{object_path}' is {objects.shape[0]}x{objects.shape[1]} (height x width)",
            )
        numbers = [int(v) for v in torch.unique(objects) if 0 < v < VOID]
        masks = objects[None] == torch.tensor(numbers, dtype=objects.dtype).reshape(-1, 1, 1)
        labels = [
            instance_class(classes[mask], number, object_path, class_path)
            for number, mask in zip(numbers, masks, strict=True)
        ]
        return Instances(masks, labels, [f"instance {number}" for number in numbers])


def instance_class(values: torch.Tensor, number: int, object_path: Path, class_path: Path) -> int:
    """The 0-based object class of instance ``number``, from the ``SegmentationClass`` values on
    its pixels: one of classes 1..20, the void 255 not counted; anything else raises."""
    found, counts = torch.unique(values[values != VOID], return_counts=True)
    if len(found) == 1 and 1 <= int(found[0]) < len(VOC_CLASSES):
        return int(found[0]) - 1
    if len(found) == 0:
        seen = "only void (255) pixels"
    else:
        seen = ", ".join(
            f"{_class_name(int(value))} on {int(count)} pixel{'' if count == 1 else 's'}"
            for value, count in zip(found, counts, strict=True)
        )
    raise DataFormatError(
        object_path,
        f"instance {number} covers {seen} in '{class_path}'; an instance must be of one of the "
        "20 object classes (1-20)",
    )


def _class_name(value: int) -> str:
    """``class 15 (person)``; a value outside VOC's classes is named as such."""
    name = VOC_CLASSES[value] if 0 <= value < len(VOC_CLASSES) else "not a VOC class"
    return f"class {value} ({name})"


def read_split_list(root: Path, split: str, lists: str = "Segmentation") -> list[str]:
    """Image ids listed in ``ImageSets/{lists}/{split}.txt`` (``Main`` for detection); a missing
    list is reported with the devkit's layout."""
    path = require_path(root / "ImageSets" / lists / f"{split}.txt", VOC_LAYOUT, "split list")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def sbd_samples(voc_root: Path, sbd_root: Path, exclude: set[str]) -> list[Sample]:
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
