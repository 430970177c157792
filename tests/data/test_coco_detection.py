from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers.fixtures import random_rgb, write_coco, write_image

from fcnlab.data import build_dataset
from fcnlab.data.datasets import COCODetection
from fcnlab.data.io import DataFormatError
from fcnlab.data.palettes import COCO_CATEGORIES, VOC_CLASSES

H, W = 16, 20
PERSON, DOG, GIRAFFE = 1, 18, 25
# 0-based classes, hand-counted: position among COCO's 80 sorted thing ids (id 12 is missing,
# so dog, id 18, is the 17th: 16), and VOC's object order without the background.
ALL_INDEX = {PERSON: 0, DOG: 16, GIRAFFE: 23}
VOC_INDEX = {PERSON: 14, DOG: 11}


def annotation(image_id: int, category: int, bbox: list, **extra) -> dict:
    return {
        "image_id": image_id,
        "category_id": category,
        "bbox": bbox,
        "segmentation": [],
        **extra,
    }


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    images = [
        {"id": 139, "file_name": "000000000139.jpg", "height": H, "width": W},
        {"id": 285, "file_name": "000000000285.jpg", "height": H, "width": W},
        {"id": 632, "file_name": "000000000632.jpg", "height": 8, "width": 6},
    ]
    annotations = [
        annotation(139, PERSON, [2, 3, 5, 4]),  # id 1
        annotation(139, DOG, [0.5, 1.25, 19.5, 14.75], iscrowd=1),  # id 2
        annotation(139, GIRAFFE, [10, 10, 10, 6]),  # id 3, reaches the corner exactly
        annotation(139, PERSON, [4, 4, 0, 3]),  # id 4, zero width: left out
        annotation(632, GIRAFFE, [1, 1, 3, 3]),  # id 5
    ]
    categories = {PERSON: "person", DOG: "dog", GIRAFFE: "giraffe"}
    return write_coco(tmp_path / "coco", "val", images, annotations, categories)


def rewrite_annotations(root: Path, change) -> None:
    path = root / "annotations" / "instances_val2017.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_all_categories_xyxy_boxes_and_crowd_flags(coco_root: Path) -> None:
    dataset = COCODetection(coco_root, "val")
    assert dataset.num_classes == 80 and dataset.task == "detection"
    assert dataset.classes == tuple(COCO_CATEGORIES[c] for c in sorted(COCO_CATEGORIES))
    assert (
        dataset.classes[ALL_INDEX[DOG]] == "dog"
        and dataset.classes[ALL_INDEX[GIRAFFE]] == "giraffe"
    )
    image, target = dataset[0]
    assert image.shape == (3, H, W)
    assert target["boxes"].tolist() == [[2, 3, 7, 7], [0.5, 1.25, 20, 16], [10, 10, 20, 16]]
    assert target["labels"].tolist() == [ALL_INDEX[PERSON], ALL_INDEX[DOG], ALL_INDEX[GIRAFFE]]
    assert target["iscrowd"].tolist() == [0, 1, 0] and target["difficult"].tolist() == [0, 0, 0]
    assert target["image_id"] == 139 and target["orig_size"] == target["image_size"] == (H, W)


def test_images_without_annotations_are_negatives_unless_dropped(coco_root: Path) -> None:
    dataset = build_dataset("coco", coco_root, "val", task="detection")
    assert isinstance(dataset, COCODetection) and dataset.image_ids == [139, 285, 632]
    _, empty = dataset[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert empty["image_id"] == 285
    assert COCODetection(coco_root, "val", drop_empty=True).image_ids == [139, 632]


def test_voc_categories_leave_other_objects_out(coco_root: Path) -> None:
    dataset = COCODetection(coco_root, "val", categories="voc", drop_empty=True)
    assert dataset.classes == VOC_CLASSES[1:] and dataset.image_ids == [139]
    target = dataset[0][1]
    assert target["labels"].tolist() == [VOC_INDEX[PERSON], VOC_INDEX[DOG]]
    assert target["iscrowd"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"category_id": 2}, r"annotation 1 of image 139 \('000000000139\.jpg'\): category id 2"),
        ({"bbox": [2, 3, -1, 4]}, r"annotation 1 of image 139 .*bbox \[2, 3, -1, 4\].*negative"),
        ({"bbox": [15, 3, 8, 4]}, r"annotation 1 .*reaches outside the 16x20 image"),
        ({"bbox": None}, r"annotation 1 of image 139 .*: bbox None is not \[x, y, width, height\]"),
        ({"bbox": [1, 2, 3]}, r"bbox \[1, 2, 3\] is not \[x, y, width, height\]"),
    ],
)
def test_bad_annotations_name_the_file_and_the_annotation(
    coco_root: Path, bad: dict, message: str
) -> None:
    rewrite_annotations(coco_root, lambda doc: doc["annotations"][0].update(bad))
    dataset = COCODetection(coco_root, "val")
    with pytest.raises(DataFormatError, match=message) as info:
        dataset[0]
    assert info.value.file.endswith("instances_val2017.json")


def test_missing_fields_and_size_mismatch(coco_root: Path) -> None:
    rewrite_annotations(coco_root, lambda doc: doc["annotations"][0].pop("id"))
    with pytest.raises(DataFormatError, match="an entry lacks the field 'id'"):
        COCODetection(coco_root, "val")
    rewrite_annotations(coco_root, lambda doc: doc["annotations"][0].update(id=1))
    rewrite_annotations(coco_root, lambda doc: doc["images"][2].pop("height"))
    with pytest.raises(DataFormatError, match=r"image 632 .* has no integer height and width"):
        COCODetection(coco_root, "val")[2]
    write_image(coco_root / "val2017" / "000000000285.jpg", random_rgb(H, W + 1))
    with pytest.raises(DataFormatError, match=r"records the image '.*285\.jpg' as 16x20 but it"):
        COCODetection(coco_root, "val")[1]


def test_skip_invalid_logs_each_bad_annotation_of_one_file(
    coco_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def break_two(document: dict) -> None:
        document["annotations"][0]["bbox"] = [2, 3, -1, 4]
        document["annotations"][4]["category_id"] = 3

    rewrite_annotations(coco_root, break_two)
    dataset = COCODetection(coco_root, "val", skip_invalid=True)
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        assert dataset[0][1]["image_id"] == 285
        # 632 is bad too: the search wraps around past 139 to 285
        assert dataset[2][1]["image_id"] == 285
    assert dataset.skipped == 2 and len(caplog.records) == 2
    assert [Path(p.file).name for p in dataset.check()] == ["instances_val2017.json"] * 2
