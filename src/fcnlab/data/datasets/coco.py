"""COCO-format annotation files read as task views: COCO 2017 itself (Lin et al., ECCV 2014)
and every file in its format, the format labelling tools export (CVAT, Label Studio, Roboflow,
labelme2coco).

- segmentation: the instance annotations merged into one class map per image;
- detection: their boxes;
- instance: one mask per annotation (polygons, uncompressed or compressed RLE), boxes derived
  from the masks.

Where the files are: ``annotations`` (the JSON file) and ``images`` (the folder its
``file_name`` entries are relative to), both relative to ``root``, ``{split}`` replaced by the
split's name (in YAML, quote a path that starts with it: ``'{split}/x.json'``), or a mapping from
split names to paths; COCO 2017's layout by default. A path without ``{split}`` is the same file
for every split.

Which categories become classes (``categories``):

- ``"file"``: the file's own categories, in category-id order (whatever the ids are: 0-based,
  1-based, with gaps), named as the file names them;
- ``"coco"``: COCO's 80 thing categories in id order, whether or not the file declares them all;
- ``"voc"``: the 20 VOC categories in VOC's order (other objects are left out);
- a list of names: those of the file's categories, in that order (the others are left out).

``"coco"`` and ``"voc"`` need a file whose categories are COCO's (same ids, same names): a file
that numbers its own categories from 1 would otherwise be read as "person", "bicycle", ...
The default (None) is ``"coco"`` for detection and ``"voc"`` for segmentation (torchvision's
COCO-with-VOC-labels) when the file declares exactly COCO's 80 categories (COCO's own
``instances_*.json``), and ``"file"`` for any other file. Detection numbers the chosen
categories from class 0, as instance segmentation does (its default is that of detection);
segmentation from 1, class 0 being the background.

Crowd annotations (``iscrowd: 1``) are regions of many objects: segmentation makes them 255
(ignored), detection and instance segmentation keep them, with their box and mask, flagged
``iscrowd`` (never positives; COCOeval ignores detections on them). Some tools write
every mask as a crowd RLE (CVAT's COCO export writes each brush mask as an uncompressed RLE with
``iscrowd: 1``): ``crowd="object"`` reads every annotation as one object instead.

An annotation of a category the file does not declare, a segmentation that breaks a rule of the
format (see :mod:`fcnlab.data.coco_masks`) or a box outside its image raises
:class:`~fcnlab.data.io.DataFormatError` naming the file, the annotation id and the rule; with
``skip_invalid=True`` its image is logged, counted and skipped.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from fcnlab.data.base import (
    DetectionDataset,
    FileDataset,
    InstanceDataset,
    Instances,
    Sample,
    SegmentationDataset,
    Transforms,
)
from fcnlab.data.coco_masks import SegmentationError, is_integer, segmentation_mask
from fcnlab.data.io import DataFormatError, layout_error, require_path
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
├── train2017/000000000009.jpg          <- images: '{split}2017' (the default)
├── val2017/000000000139.jpg
└── annotations/instances_{train,val}2017.json
                                        <- annotations: 'annotations/instances_{split}2017.json'
(options annotations: and images: name any other file and folder, relative to root)
"""
DEFAULT_ANNOTATIONS = "annotations/instances_{split}2017.json"
DEFAULT_IMAGES = "{split}2017"
CATEGORY_SETS = ("file", "coco", "voc")
# Category set names of earlier versions, still read (with a FutureWarning).
OLD_CATEGORY_SETS = {"all": "coco"}
OVERLAP_RULES = ("category", "torchvision")
CROWD_RULES = ("ignore", "object")

#: ``annotations`` and ``images``: one path (``{split}`` replaced) or one path per split.
SplitPath = str | Path | Mapping[str, str | Path]
#: ``categories``: a category set's name, the names of the categories to keep, or None (auto).
Categories = str | Sequence[str] | None


class COCOImages(FileDataset):
    """What COCO's task views share: a split's pycocotools index (``coco``), the kept categories
    (``category_index``: category id -> class index) and the images (``image_ids``, in id
    order); each sample is ``(image file, annotation file)``. A view says which class its first
    category becomes and which category set ``categories=None`` means for COCO's own files."""

    first_class: int
    coco_categories: str
    coco: COCO
    annotation_file: Path
    crowd: str
    category_index: dict[int, int]
    image_ids: list[int]

    def open_split(
        self,
        root: str | Path,
        split: str,
        annotations: SplitPath,
        images: SplitPath,
        categories: Categories,
        crowd: str,
        drop_empty: bool,
    ) -> tuple[list[Sample], tuple[str, ...]]:
        """Index ``split``'s annotation file and image folder under ``root``: returns the
        ``(image, annotation file)`` samples and the class names of the kept categories, numbered
        from the view's ``first_class``."""
        _check_choice("crowd", crowd, CROWD_RULES)
        self.crowd = crowd
        root = require_path(Path(root), COCO_LAYOUT)
        annotation_file = require_path(
            split_path(root, annotations, split, "annotations"), COCO_LAYOUT, "annotation file"
        )
        image_folder = require_path(
            split_path(root, images, split, "images"), COCO_LAYOUT, "image folder"
        )
        self.coco = load_coco(annotation_file)
        self.annotation_file = annotation_file
        category_ids, names = choose_categories(
            file_categories(self.coco, annotation_file),
            categories,
            self.coco_categories,
            annotation_file,
        )
        self.category_index = {cat: self.first_class + k for k, cat in enumerate(category_ids)}
        self.image_ids = sorted(self.coco.imgs)
        if drop_empty:
            # An image is kept while it has an annotation of a kept category, or of an
            # undeclared one, so that loading it reports that annotation.
            left_out = set(self.coco.cats) - set(self.category_index)
            self.image_ids = [
                i
                for i in self.image_ids
                if any(a.get("category_id") not in left_out for a in self.coco.imgToAnns[i])
            ]
        unnamed = [i for i in self.image_ids if not self.coco.imgs[i].get("file_name")]
        if unnamed:
            which = (
                f"image {unnamed[0]} has"
                if len(unnamed) == 1
                else f"images {_listed(unnamed)} have"
            )
            raise DataFormatError(annotation_file, f"{which} no file_name")
        samples = [
            (image_folder / self.coco.imgs[i]["file_name"], annotation_file) for i in self.image_ids
        ]
        return samples, names

    def check_image_references(self) -> None:
        """Report annotations whose ``image_id`` the file's images do not list (they would
        otherwise never be read): an error, or with ``skip_invalid`` a logged problem."""
        unlisted = [
            annotation
            for image_id, found in self.coco.imgToAnns.items()
            if image_id not in self.coco.imgs
            for annotation in found
        ]
        if not unlisted:
            return
        ids = list(dict.fromkeys(annotation["image_id"] for annotation in unlisted))
        error = DataFormatError(
            self.annotation_file,
            f"{_counted(len(unlisted), 'annotation')} (first: id {unlisted[0].get('id')}) refer "
            f"to image ids {_listed(ids)} that the file's images do not list",
        )
        if not self.skip_invalid:
            raise error
        self.skip_log.record(error)

    def describe(self, index: int, annotation: Mapping[str, Any] | None = None) -> str:
        """``image 139 ('000000000139.jpg')``, or ``annotation 7 of image 139 (...)``."""
        image_id = self.image_ids[index]
        image = f"image {image_id} ('{self.coco.imgs[image_id]['file_name']}')"
        return image if annotation is None else f"annotation {annotation.get('id')} of {image}"

    def annotation_error(
        self, index: int, annotation: Mapping[str, Any], rule: str
    ) -> DataFormatError:
        """An error naming the file, ``annotation`` of sample ``index`` and the ``rule``."""
        return DataFormatError(
            self.samples[index][1], f"{self.describe(index, annotation)}: {rule}"
        )

    def image_size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` as sample ``index``'s image record gives it."""
        record = self.coco.imgs[self.image_ids[index]]
        height, width = record.get("height"), record.get("width")
        if not (is_integer(height) and is_integer(width) and height > 0 and width > 0):
            raise DataFormatError(
                self.samples[index][1],
                f"{self.describe(index)} has no integer height and width "
                f"(height {height!r}, width {width!r})",
            )
        return height, width

    def kept_annotations(self, index: int) -> list[tuple[dict[str, Any], int]]:
        """The annotations of sample ``index`` whose category is kept, with their class; one of a
        category the file does not declare raises."""
        kept = []
        for annotation in self.coco.imgToAnns[self.image_ids[index]]:
            category = annotation.get("category_id")
            if category not in self.coco.cats:
                raise self.annotation_error(
                    index,
                    annotation,
                    f"category id {category!r} is not among the file's categories",
                )
            if category in self.category_index:
                kept.append((annotation, self.category_index[category]))
        return kept

    def is_crowd(self, annotation: Mapping[str, Any]) -> bool:
        """Whether ``annotation`` is a crowd region: its ``iscrowd`` flag, unless
        ``crowd="object"`` reads every annotation as one object."""
        return self.crowd == "ignore" and bool(annotation.get("iscrowd", 0))

    def instance_mask(self, index: int, annotation: Mapping[str, Any]) -> np.ndarray:
        """The bool ``(H, W)`` mask of ``annotation`` (polygons, uncompressed or compressed RLE)
        at sample ``index``'s image size; a segmentation that breaks a rule of the format raises
        naming the file, the annotation and the rule."""
        size = self.image_size(index)
        try:
            return segmentation_mask(annotation.get("segmentation"), size)
        except SegmentationError as error:
            raise self.annotation_error(index, annotation, str(error)) from None


@DATASETS.register("coco")
class COCOSegmentation(COCOImages, SegmentationDataset):
    """Images of a COCO-format file with a semantic mask drawn from their instance annotations.

    Class 0 is the background, the chosen categories follow from 1 (see the module docstring for
    ``annotations``, ``images`` and ``categories``); objects of categories that are not chosen are
    background. Masks are decoded from polygons and from compressed or uncompressed RLE, each
    checked against the rules of the format and the image's size.

    ``overlap="category"``: a pixel covered by annotations of two or more different categories is
    255 (its class is ambiguous), and so is the whole area of every crowd annotation.
    ``overlap="torchvision"`` follows torchvision's segmentation reference script instead, so its
    published COCO numbers can be compared: a pixel covered by two or more annotations is 255, and
    crowd annotations count as ordinary ones. ``drop_empty=True`` drops images without any
    annotation of a kept category (for training).
    """

    first_class = 1
    coco_categories = "voc"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Transforms | None = None,
        *,
        annotations: SplitPath = DEFAULT_ANNOTATIONS,
        images: SplitPath = DEFAULT_IMAGES,
        categories: Categories = None,
        overlap: str = "category",
        crowd: str = "ignore",
        drop_empty: bool = False,
        skip_invalid: bool = False,
    ) -> None:
        _check_choice("overlap", overlap, OVERLAP_RULES)
        self.overlap = overlap
        samples, names = self.open_split(
            root, split, annotations, images, categories, crowd, drop_empty
        )
        classes = ("background", *names)
        super().__init__(samples, classes, voc_palette(len(classes)), transforms, skip_invalid)
        self.check_image_references()

    def load_mask(self, index: int) -> torch.Tensor:
        """The semantic mask of sample ``index``, drawn from its annotations."""
        kept = self.kept_annotations(index)
        mask = merge_instance_masks(
            [self.instance_mask(index, annotation) for annotation, _ in kept],
            [label for _, label in kept],
            [self.is_crowd(annotation) for annotation, _ in kept],
            self.image_size(index),
            self.overlap,
            self.ignore_index,
        )
        return torch.from_numpy(mask)


class COCOObjects(COCOImages):
    """What the object views (detection, instance) share: the chosen categories numbered from
    class 0, COCO's 80 for COCO's own files, and images without objects kept as negatives unless
    ``drop_empty=True``."""

    first_class = 0
    coco_categories = "coco"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable[..., Any] | None = None,
        *,
        annotations: SplitPath = DEFAULT_ANNOTATIONS,
        images: SplitPath = DEFAULT_IMAGES,
        categories: Categories = None,
        crowd: str = "ignore",
        drop_empty: bool = False,
        skip_invalid: bool = False,
    ) -> None:
        samples, classes = self.open_split(
            root, split, annotations, images, categories, crowd, drop_empty
        )
        super().__init__(samples, classes, transforms, skip_invalid)
        self.check_image_references()


@DATASETS.register("coco", task="detection")
class COCODetection(COCOObjects, DetectionDataset):
    """Images of a COCO-format file with the boxes of their instance annotations.

    The chosen categories are classes from 0 (see the module docstring for ``annotations``,
    ``images`` and ``categories``); objects of other categories are left out. ``bbox``
    ``[x, y, w, h]`` becomes ``(x, y, x + w, y + h)``. Crowd annotations are kept with
    ``iscrowd = 1`` (targets never make them positives; COCOeval ignores detections on them).
    Images without annotations are kept as negatives unless ``drop_empty=True``. ``image_id`` is
    the file's image id. An annotation whose category the file does not declare, or whose box is
    missing, negative or outside its image, raises naming the file, the annotation id and the
    image; boxes of zero width or height are left out.
    """

    def load_target(self, index: int) -> Target:
        """The kept annotations of sample ``index`` as a target, boxes checked against the
        size its image record gives."""
        size = self.image_size(index)
        boxes, labels, crowd, names = [], [], [], []
        for annotation, label in self.kept_annotations(index):
            bbox = annotation.get("bbox")
            if not _is_box(bbox):
                raise self.annotation_error(
                    index, annotation, f"bbox {bbox!r} is not [x, y, width, height]"
                )
            x, y, w, h = (float(v) for v in bbox)
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
            crowd.append(int(self.is_crowd(annotation)))
            names.append(f"{self.describe(index, annotation)}, bbox [{x:g}, {y:g}, {w:g}, {h:g}]")
        clipped, keep = check_boxes(
            torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            size,
            self.samples[index][1],
            names,
        )
        image_id = self.image_ids[index]
        return select_instances(make_target(clipped, labels, image_id, size, iscrowd=crowd), keep)


@DATASETS.register("coco", task="instance")
class COCOInstances(COCOObjects, InstanceDataset):
    """Images of a COCO-format file with one mask per instance annotation.

    The chosen categories are classes from 0, as for detection (see the module docstring for
    ``annotations``, ``images`` and ``categories``); objects of other categories are left out.
    Masks are decoded from polygons and from compressed or uncompressed RLE at the size the
    image record gives, each checked against the rules of the format
    (:mod:`fcnlab.data.coco_masks`); boxes are derived from the masks, the file's ``bbox`` is not
    read. Crowd annotations are kept, with their mask, flagged ``iscrowd = 1`` (``crowd="object"``
    reads them as ordinary objects). Annotations whose mask covers no pixel are left out; images
    without annotations are kept as negatives unless ``drop_empty=True``. ``image_id`` is the
    file's image id.

    An annotation of a category the file does not declare, a polygon of fewer than 3 points, an
    RLE whose size is not its image's, any other broken segmentation, and an image whose size
    differs from its record raise :class:`~fcnlab.data.io.DataFormatError` naming the file and the
    annotation id; with ``skip_invalid=True`` the image is logged, counted and skipped.
    """

    def image_id(self, index: int) -> int:
        """The file's id of sample ``index``'s image."""
        return self.image_ids[index]

    def load_instances(self, index: int) -> Instances:
        """The masks of sample ``index``'s kept annotations at its record's size."""
        height, width = self.image_size(index)
        kept = self.kept_annotations(index)
        masks = [self.instance_mask(index, annotation) for annotation, _ in kept]
        stacked = np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool)
        return Instances(
            torch.from_numpy(stacked),
            [label for _, label in kept],
            [self.describe(index, annotation) for annotation, _ in kept],
            [int(self.is_crowd(annotation)) for annotation, _ in kept],
        )


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


def split_path(root: Path, option: SplitPath, split: str, name: str) -> Path:
    """``root / option`` for ``split``: ``{split}`` in the path is replaced by the split's name;
    a mapping gives each split its own path (a split it does not name is not there)."""
    if isinstance(option, Mapping):
        if not all(isinstance(path, str | Path) for path in option.values()):
            # YAML reads an unquoted {split}/x.json as a mapping {"split": None}
            raise ValueError(
                f"{name}={dict(option)!r} is neither a path nor one path per split; in YAML, "
                f"quote a path that starts with {{split}}: {name}: '{{split}}/...'"
            )
        if split not in option:
            raise layout_error(
                f"{name} names no file for split {split!r} (it names {', '.join(option)})",
                COCO_LAYOUT,
            )
        option = option[split]
    return root / str(option).replace("{split}", split)


def load_coco(annotation_file: Path) -> COCO:
    """A pycocotools index of ``annotation_file``, without its progress prints."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(annotation_file))
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


def file_categories(coco: COCO, path: Path) -> dict[int, str]:
    """The categories ``path`` declares, id -> name; ids must be integers, each declared once."""
    declared: dict[int, str] = {}
    for record in coco.dataset.get("categories", []):
        category, name = record.get("id"), record.get("name")
        if not is_integer(category) or not isinstance(name, str):
            raise DataFormatError(path, f"category {record!r} has no integer id and string name")
        if category in declared:
            raise DataFormatError(
                path, f"category id {category} is declared twice ({declared[category]!r}, {name!r})"
            )
        declared[category] = name
    return declared


def choose_categories(
    declared: Mapping[int, str], categories: Categories, coco_default: str, path: Path
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The category ids that ``categories`` keeps, in class order, and their class names (see
    the module docstring); ``declared`` are the file's categories (id -> name), ``coco_default``
    the set that None means for COCO's own files."""
    if categories is None:
        categories = coco_default if dict(declared) == COCO_CATEGORIES else "file"
    if isinstance(categories, str) and categories in OLD_CATEGORY_SETS:
        new = OLD_CATEGORY_SETS[categories]
        warnings.warn(
            f"categories={categories!r} is now called {new!r}", FutureWarning, stacklevel=4
        )
        categories = new
    if not isinstance(categories, str):
        return _named_categories(declared, categories, path)
    _check_choice("categories", categories, CATEGORY_SETS)
    if categories == "file":
        _check_unique_names(declared, path)
        ids = tuple(sorted(declared))
        return ids, tuple(declared[cat] for cat in ids)
    _check_coco_names(declared, categories, path)
    if categories == "voc":
        return COCO_IDS_OF_VOC_CLASSES, VOC_CLASSES[1:]
    ids = tuple(sorted(COCO_CATEGORIES))
    return ids, tuple(COCO_CATEGORIES[cat] for cat in ids)


def _named_categories(
    declared: Mapping[int, str], names: Sequence[str], path: Path
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The ids of the file's categories called ``names``, in that order."""
    names = tuple(names)
    if not names or not all(isinstance(name, str) for name in names):
        raise ValueError(
            f"categories={list(names)!r}: expected one of {', '.join(map(repr, CATEGORY_SETS))} "
            "or a list of the file's category names"
        )
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise ValueError(f"categories={list(names)!r} names {_listed(repeated)} more than once")
    _check_unique_names(declared, path)
    ids = {name: cat for cat, name in declared.items()}
    unknown = [name for name in names if name not in ids]
    if unknown:
        raise DataFormatError(
            path,
            f"declares no categories {_listed(unknown)}; its categories are "
            f"{_listed(list(declared.values()))}",
        )
    return tuple(ids[name] for name in names), names


def _check_unique_names(declared: Mapping[int, str], path: Path) -> None:
    ids_of: dict[str, list[int]] = {}
    for category, name in declared.items():
        ids_of.setdefault(name, []).append(category)
    repeated = {name: ids for name, ids in ids_of.items() if len(ids) > 1}
    if repeated:
        name, ids = next(iter(repeated.items()))
        raise DataFormatError(
            path,
            f"declares the category name {name!r} for ids {_listed(ids)}; class names must differ",
        )


def _check_coco_names(declared: Mapping[int, str], categories: str, path: Path) -> None:
    """Raise unless every category the file declares is COCO's category of that id."""
    for category, name in declared.items():
        if COCO_CATEGORIES.get(category) != name:
            coco_name = COCO_CATEGORIES.get(category)
            found = (
                f"is {name!r} here but {coco_name!r} in COCO"
                if coco_name is not None
                else f"({name!r}) is not one of COCO's 80 thing categories"
            )
            raise DataFormatError(
                path,
                f"category id {category} {found}; categories={categories!r} reads COCO's own "
                "categories, categories='file' the file's",
            )


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


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _listed(values: Sequence[Any], limit: int = 10) -> str:
    """``'a', 'b' and 3 more`` (reprs of the first ``limit`` values)."""
    shown = ", ".join(repr(value) for value in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
