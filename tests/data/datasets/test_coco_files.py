"""COCO-format files as labelling tools export them (own categories, own file and folder names),
read by both task views; and what the readers do with annotations that break the format."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers.fixtures import (
    compressed_rle,
    rectangle_polygon,
    uncompressed_rle,
    write_coco_export,
)

from fcnlab.data.datasets import COCODetection, COCOSegmentation
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import COCO_CATEGORIES, voc_palette
from fcnlab.data.registry import build_dataset

H, W = 12, 16
CRACK, DENT = 1, 2


def box(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """Binary (H, W) mask of rows top..bottom-1 and columns left..right-1."""
    mask = np.zeros((H, W), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def image_record(image_id: int, file_name: str, height: int = H, width: int = W) -> dict:
    """An image record as CVAT writes it."""
    return {
        "id": image_id,
        "width": width,
        "height": height,
        "file_name": file_name,
        "license": 0,
        "flickr_url": "",
        "coco_url": "",
        "date_captured": 0,
    }


def record(number: int, image_id: int, category: int, segmentation, bbox, crowd: int = 0) -> dict:
    """An annotation record as CVAT writes it (with its ``attributes`` extension)."""
    return {
        "id": number,
        "image_id": image_id,
        "category_id": category,
        "segmentation": segmentation,
        "area": float(bbox[2] * bbox[3]),
        "bbox": bbox,
        "iscrowd": crowd,
        "attributes": {"occluded": False},
    }


# Image 1: a crack (polygon), a dent (compressed RLE) and a crowd of cracks (uncompressed RLE, as
# COCO and CVAT store crowds); image 2: a dent (polygon); image 3: nothing.
CRACK_AREA, DENT_AREA, CROWD_AREA, SECOND_DENT = (
    box(1, 1, 4, 9),
    box(6, 2, 10, 6),
    box(8, 10, 12, 16),
    box(0, 0, 5, 5),
)
CATEGORIES = [
    {"id": CRACK, "name": "crack", "supercategory": ""},
    {"id": DENT, "name": "dent", "supercategory": ""},
]


def annotations() -> list[dict]:
    return [
        record(1, 1, CRACK, rectangle_polygon(1, 1, 4, 9), [1, 1, 8, 3]),
        record(2, 1, DENT, compressed_rle(DENT_AREA), [2, 6, 4, 4]),
        record(3, 1, CRACK, uncompressed_rle(CROWD_AREA), [10, 8, 6, 4], crowd=1),
        record(4, 2, DENT, rectangle_polygon(0, 0, 5, 5), [0, 0, 5, 5]),
    ]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A Roboflow-style export: each split's folder holds its images and its
    ``_annotations.coco.json``; the splits are ``train`` and ``valid``."""
    images = [image_record(1, "a.jpg"), image_record(2, "b.jpg"), image_record(3, "c.jpg")]
    for split in ("train", "valid"):
        folder = tmp_path / "cracks" / split
        write_coco_export(
            folder / "_annotations.coco.json", folder, images, annotations(), CATEGORIES
        )
    return tmp_path / "cracks"


LAYOUT = {"annotations": "{split}/_annotations.coco.json", "images": "{split}"}


def rewrite(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_segmentation_reads_the_files_own_categories(export: Path) -> None:
    dataset = COCOSegmentation(export, "valid", **LAYOUT)
    assert dataset.classes == ("background", "crack", "dent") and dataset.num_classes == 3
    assert np.array_equal(dataset.palette, voc_palette(3))
    image, mask = dataset[0]
    expected = np.zeros((H, W), dtype=np.int64)
    expected[CRACK_AREA] = 1
    expected[DENT_AREA] = 2
    expected[CROWD_AREA] = 255
    assert image.shape == (3, H, W) and torch.equal(mask, torch.from_numpy(expected))
    assert torch.equal(dataset[1][1], torch.from_numpy(SECOND_DENT * np.int64(2)))
    assert not dataset[2][1].any()


def test_detection_reads_the_files_own_categories(export: Path) -> None:
    dataset = COCODetection(export, "valid", **LAYOUT)
    assert dataset.classes == ("crack", "dent")
    target = dataset[0][1]
    assert target["boxes"].tolist() == [[1, 1, 9, 4], [2, 6, 6, 10], [10, 8, 16, 12]]
    assert target["labels"].tolist() == [0, 1, 0] and target["iscrowd"].tolist() == [0, 0, 1]


def test_the_registry_passes_the_options_of_a_config(export: Path) -> None:
    segmentation = build_dataset("coco", export, "train", **LAYOUT)
    detection = build_dataset("coco", export, "train", task="detection", **LAYOUT)
    assert segmentation.classes[1:] == detection.classes == ("crack", "dent")


def test_zero_based_ids_with_gaps_become_contiguous_classes_in_id_order(tmp_path: Path) -> None:
    # Label Studio numbers categories from 0; the images sit in images/ beside result.json and
    # the file names include that folder.
    categories = [
        {"id": 7, "name": "rust"},
        {"id": 0, "name": "dent"},
        {"id": 3, "name": "crack"},
    ]
    found = [
        record(10, 5, 7, rectangle_polygon(0, 0, 2, 2), [0, 0, 2, 2]),
        record(11, 5, 0, rectangle_polygon(4, 4, 6, 6), [4, 4, 2, 2]),
    ]
    write_coco_export(
        tmp_path / "result.json", tmp_path, [image_record(5, "images/x.jpg")], found, categories
    )
    options = {"annotations": "result.json", "images": "."}
    dataset = COCOSegmentation(tmp_path, "val", **options)
    assert dataset.classes == ("background", "dent", "crack", "rust")
    mask = dataset[0][1]
    assert mask[0, 0] == 3 and mask[4, 4] == 1 and mask.eq(3).sum() == 4
    assert COCODetection(tmp_path, "val", **options)[0][1]["labels"].tolist() == [2, 0]


def test_a_subset_of_cocos_categories_is_the_files_own_unless_coco_is_asked_for(
    tmp_path: Path,
) -> None:
    categories = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
    found = [record(1, 1, 18, rectangle_polygon(0, 0, 2, 2), [0, 0, 2, 2])]
    write_coco_export(tmp_path / "a.json", tmp_path, [image_record(1, "a.jpg")], found, categories)
    options = {"annotations": "a.json", "images": "."}
    assert COCODetection(tmp_path, "val", **options).classes == ("person", "dog")
    assert COCODetection(tmp_path, "val", **options)[0][1]["labels"].tolist() == [1]
    coco = COCODetection(tmp_path, "val", categories="coco", **options)
    assert len(coco.classes) == 80 and coco[0][1]["labels"].tolist() == [16]
    voc = COCOSegmentation(tmp_path, "val", categories="voc", **options)
    assert voc.classes[12] == "dog" and voc[0][1][0, 0] == 12


def test_exactly_cocos_categories_are_read_as_coco(tmp_path: Path) -> None:
    categories = [{"id": c, "name": n, "supercategory": ""} for c, n in COCO_CATEGORIES.items()]
    write_coco_export(tmp_path / "a.json", tmp_path, [image_record(1, "a.jpg")], [], categories)
    options = {"annotations": "a.json", "images": "."}
    assert len(COCODetection(tmp_path, "val", **options).classes) == 80
    assert len(COCOSegmentation(tmp_path, "val", **options).classes) == 21  # VOC's


@pytest.mark.parametrize("categories", ["coco", "voc"])
def test_cocos_category_sets_refuse_a_file_with_other_categories(
    export: Path, categories: str
) -> None:
    with pytest.raises(DataFormatError, match="category id 1 is 'crack' here but 'person' in COCO"):
        COCOSegmentation(export, "valid", categories=categories, **LAYOUT)
    rewrite(
        export / "valid" / "_annotations.coco.json",
        lambda doc: doc.update(categories=[{"id": 91, "name": "hair brush"}]),
    )
    with pytest.raises(DataFormatError, match=r"category id 91 \('hair brush'\) is not one of"):
        COCODetection(export, "valid", categories=categories, **LAYOUT)


def test_a_list_of_names_keeps_those_categories_in_that_order(export: Path) -> None:
    dataset = COCOSegmentation(export, "valid", categories=["dent"], **LAYOUT)
    assert dataset.classes == ("background", "dent")
    mask = dataset[0][1]
    assert mask[DENT_AREA].eq(1).all() and mask[CRACK_AREA].eq(0).all()
    assert mask[CROWD_AREA].eq(0).all()  # a crowd of cracks, left out with the cracks
    reordered = COCODetection(export, "valid", categories=["dent", "crack"], **LAYOUT)
    assert reordered[0][1]["labels"].tolist() == [1, 0, 1]
    with pytest.raises(
        DataFormatError, match=r"declares no categories 'scratch'; .* 'crack', 'dent'"
    ):
        COCODetection(export, "valid", categories=["scratch"], **LAYOUT)
    with pytest.raises(ValueError, match="names 'dent' more than once"):
        COCODetection(export, "valid", categories=["dent", "dent"], **LAYOUT)


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        (
            [{"id": 1, "name": "crack"}, {"id": 1, "name": "dent"}],
            "category id 1 is declared twice",
        ),
        (
            [{"id": 1, "name": "crack"}, {"id": 2, "name": "crack"}],
            r"declares the category name 'crack' for ids 1, 2",
        ),
        ([{"id": "1", "name": "crack"}], "has no integer id and string name"),
    ],
)
def test_ambiguous_categories_are_refused(export: Path, categories: list, message: str) -> None:
    path = export / "valid" / "_annotations.coco.json"
    rewrite(path, lambda doc: doc.update(categories=categories))
    with pytest.raises(DataFormatError, match=message) as info:
        COCODetection(export, "valid", **LAYOUT)
    assert info.value.file == str(path)


def test_an_image_record_without_a_file_name_is_named(export: Path) -> None:
    rewrite(
        export / "valid" / "_annotations.coco.json", lambda doc: doc["images"][1].pop("file_name")
    )
    with pytest.raises(DataFormatError, match="image 2 has no file_name"):
        COCODetection(export, "valid", **LAYOUT)


def test_paths_per_split_and_missing_ones(export: Path) -> None:
    per_split = {
        "annotations": {
            "train": "train/_annotations.coco.json",
            "val": "valid/_annotations.coco.json",
        },
        "images": {"train": "train", "val": "valid"},
    }
    dataset = COCODetection(export, "val", **per_split)
    assert dataset.samples[0] == (
        export / "valid" / "a.jpg",
        export / "valid" / "_annotations.coco.json",
    )
    with pytest.raises(DatasetNotFoundError, match="annotations names no file for split 'test'"):
        COCODetection(export, "test", **per_split)
    with pytest.raises(
        DatasetNotFoundError, match=r"annotation file '.*test/_annotations.coco.json'"
    ):
        COCODetection(export, "test", **LAYOUT)
    unquoted = yaml.safe_load("images: {split}")["images"]
    with pytest.raises(ValueError, match=r"images=\{'split': None\} is neither a path .* quote"):
        COCODetection(export, "valid", annotations=LAYOUT["annotations"], images=unquoted)
    with pytest.raises(DatasetNotFoundError, match=r"image folder '.*pictures' does not exist"):
        COCODetection(export, "valid", annotations=LAYOUT["annotations"], images="pictures")


def test_an_undeclared_category_is_an_error_or_a_counted_skip_in_segmentation(
    export: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = export / "valid" / "_annotations.coco.json"
    rewrite(path, lambda doc: doc["annotations"][3].update(category_id=5))
    with pytest.raises(DataFormatError) as info:
        COCOSegmentation(export, "valid", **LAYOUT)[1]
    assert info.value.file == str(path)
    assert info.value.reason.startswith(
        "annotation 4 of image 2 ('b.jpg'): category id 5 is not among the file's categories"
    )
    # drop_empty keeps the image, whose only annotation is of no kept category, to report it
    kept = COCOSegmentation(export, "valid", categories=["crack"], drop_empty=True, **LAYOUT)
    assert kept.image_ids == [1, 2]
    skipping = COCOSegmentation(export, "valid", skip_invalid=True, **LAYOUT)
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        assert skipping[1][1].eq(0).all()  # image 3 in its place
    assert skipping.skipped == 1 and "category id 5" in caplog.records[0].getMessage()


def test_annotations_of_images_the_file_does_not_list_are_reported(export: Path) -> None:
    path = export / "valid" / "_annotations.coco.json"
    rewrite(path, lambda doc: doc["annotations"][3].update(image_id=99))
    with pytest.raises(
        DataFormatError, match=r"1 annotation \(first: id 4\) refer to image ids 99"
    ):
        COCOSegmentation(export, "valid", **LAYOUT)
    skipping = COCODetection(export, "valid", skip_invalid=True, **LAYOUT)
    assert skipping.skipped == 1 and len(skipping) == 3


BAD_SEGMENTATIONS = [
    ([[3, 4]], "its polygon 1 has 1 point; a polygon needs at least 3"),
    ([[3, 4, 5, 6]], "its polygon 1 has 2 points; a polygon needs at least 3"),
    ([[0, 0, 4, 0, 4, 4], [1, 1, 2]], "its polygon 2 has 3 coordinates; a polygon needs an even"),
    ([0, 0, 4, 0, 4, 4], "its segmentation is one flat list of numbers"),
    ([], "its segmentation is an empty list"),
    ([[0, 0, "4", 0, 4, 4]], "its polygon 1 is .*; expected a list of finite numbers"),
    ({"counts": [H * W], "size": [W, H]}, rf"its RLE size \[{W}, {H}\] is not its image's size"),
    (
        compressed_rle(np.zeros((H, W + 1), dtype=bool)),
        rf"its RLE size \[{H}, {W + 1}\] is not its image's size \[{H}, {W}\]",
    ),
    ({"counts": [5, 3], "size": [H, W]}, rf"its uncompressed RLE counts cover 8 pixels, .*{H * W}"),
    ({"counts": [H * W + 2, -2], "size": [H, W]}, "its uncompressed RLE holds the negative run"),
    ({"counts": "0", "size": [H, W]}, "its compressed RLE counts cover 0 pixels"),
    ({"counts": "ab c", "size": [H, W]}, "its compressed RLE counts hold ' ', which is not"),
    (None, "its segmentation None is neither polygons"),
]


@pytest.mark.parametrize(("segmentation", "rule"), BAD_SEGMENTATIONS)
def test_a_bad_segmentation_names_the_file_the_annotation_and_the_rule(
    export: Path, segmentation, rule: str
) -> None:
    path = export / "valid" / "_annotations.coco.json"
    rewrite(path, lambda doc: doc["annotations"][3].update(segmentation=segmentation))
    dataset = COCOSegmentation(export, "valid", **LAYOUT)
    with pytest.raises(DataFormatError) as info:
        dataset.load(1)
    assert info.value.file == str(path)
    assert re.match(rf"annotation 4 of image 2 \('b\.jpg'\): {rule}", info.value.reason)
    assert dataset.check()[0].file == str(path) and len(dataset.check()) == 1


def test_bad_segmentations_are_skipped_and_counted(export: Path) -> None:
    def break_two(document: dict) -> None:
        document["annotations"][0]["segmentation"] = [[3, 4]]
        document["annotations"][3]["segmentation"] = [[3, 4, 5, 6]]

    rewrite(export / "valid" / "_annotations.coco.json", break_two)
    dataset = COCOSegmentation(export, "valid", skip_invalid=True, **LAYOUT)
    assert [torch.equal(dataset[i][1], dataset[2][1]) for i in range(3)] == [True] * 3
    assert dataset.skipped == 2
    # boxes need no segmentation: the detection view reads the same file
    assert len(COCODetection(export, "valid", **LAYOUT)[0][1]["boxes"]) == 3


def test_crowd_object_reads_crowd_rles_as_objects(export: Path) -> None:
    # CVAT's COCO export writes every brush mask as an uncompressed RLE with iscrowd 1.
    mask = COCOSegmentation(export, "valid", crowd="object", **LAYOUT)[0][1]
    assert mask[CROWD_AREA].eq(1).all()
    target = COCODetection(export, "valid", crowd="object", **LAYOUT)[0][1]
    assert target["iscrowd"].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="crowd='objects': expected one of 'ignore', 'object'"):
        COCODetection(export, "valid", crowd="objects", **LAYOUT)


def test_instance_mask_is_the_annotations_own_mask_at_its_image_size(export: Path) -> None:
    dataset = COCODetection(export, "valid", **LAYOUT)
    found = dataset.coco.imgToAnns[1]
    masks = [dataset.instance_mask(0, annotation) for annotation in found]
    for mask, expected in zip(masks, (CRACK_AREA, DENT_AREA, CROWD_AREA), strict=True):
        assert mask.dtype == bool and np.array_equal(mask, expected)
