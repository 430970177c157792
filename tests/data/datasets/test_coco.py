from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import (
    compressed_rle,
    random_rgb,
    rectangle_polygon,
    uncompressed_rle,
    write_coco,
    write_image,
)

from fcnlab.data.datasets import COCODetection, COCOSegmentation
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import COCO_CATEGORIES, VOC_CLASSES
from fcnlab.data.registry import build_dataset

H, W = 16, 20
PERSON, DOG, GIRAFFE = 1, 18, 25
# Class indices, hand-counted: VOC order, and position among COCO's 80 sorted thing ids
# (id 12 is missing, so dog, id 18, is the 17th and giraffe, id 25, the 24th).
VOC_INDEX = {PERSON: 15, DOG: 12}
ALL_INDEX = {PERSON: 1, DOG: 17, GIRAFFE: 24}


def box(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """Binary (H, W) mask of rows top..bottom-1 and columns left..right-1."""
    mask = np.zeros((H, W), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


# Image 139: two overlapping persons (polygon, compressed RLE), a dog overlapping the second
# person (uncompressed RLE), a crowd of persons, and a giraffe (not a VOC class) over the dog.
A, B, C, D, E = (
    box(2, 2, 8, 10),
    box(5, 6, 10, 13),
    box(8, 10, 13, 16),
    box(12, 0, 15, 5),
    box(12, 14, 15, 20),
)


# Both fixtures declare COCO's 80 categories, as COCO's own instances files do, so the defaults
# read them as COCO (VOC's classes for segmentation, COCO's 80 for detection).
@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    images = [
        {"id": 139, "file_name": "000000000139.jpg", "height": H, "width": W},
        {"id": 285, "file_name": "000000000285.jpg", "height": H, "width": W},
        {"id": 632, "file_name": "000000000632.jpg", "height": 8, "width": 6},
    ]
    annotations = [
        {"image_id": 139, "category_id": PERSON, "segmentation": rectangle_polygon(2, 2, 8, 10)},
        {"image_id": 139, "category_id": PERSON, "segmentation": compressed_rle(B)},
        {"image_id": 139, "category_id": DOG, "segmentation": uncompressed_rle(C)},
        {"image_id": 139, "category_id": PERSON, "segmentation": uncompressed_rle(D), "iscrowd": 1},
        {
            "image_id": 139,
            "category_id": GIRAFFE,
            "segmentation": rectangle_polygon(12, 14, 15, 20),
        },
        {"image_id": 632, "category_id": GIRAFFE, "segmentation": rectangle_polygon(1, 1, 4, 4)},
    ]
    return write_coco(tmp_path / "coco", "val", images, annotations, COCO_CATEGORIES)


def expected_mask(index: dict[int, int], instances, torchvision: bool) -> torch.Tensor:
    """The semantic mask by the rules, from the fixture's own boxes.

    ``instances`` are (mask, category, crowd) for the annotations of kept categories.
    """
    mask = np.zeros((H, W), dtype=np.int64)
    for area, category, _ in instances:
        mask[area] = index[category]
    if torchvision:
        covered = sum(area.astype(int) for area, _, _ in instances)
        mask[covered > 1] = 255
        return torch.from_numpy(mask)
    for first, cat_a, _ in instances:
        for second, cat_b, _ in instances:
            if cat_a != cat_b:
                mask[first & second] = 255
    for area, _, crowd in instances:
        if crowd:
            mask[area] = 255
    return torch.from_numpy(mask)


def test_hand_worked_overlaps() -> None:
    # The person boxes overlap (same class); the second person and the dog overlap.
    assert (A & B).sum() == 3 * 4 and (B & C).sum() == 2 * 3 and (C & E).sum() == 1 * 2
    assert not (A & C).any() and not (D & (A | B | C | E)).any()


@pytest.mark.parametrize("overlap", ["category", "torchvision"])
@pytest.mark.parametrize("categories", ["voc", "coco"])
def test_masks_follow_the_overlap_rules(coco_root: Path, categories: str, overlap: str) -> None:
    dataset = COCOSegmentation(coco_root, "val", categories=categories, overlap=overlap)
    instances = [(A, PERSON, False), (B, PERSON, False), (C, DOG, False)]
    # The crowd counts as an ordinary person for torchvision; the crowd rule handles it otherwise.
    instances.append((D, PERSON, overlap == "category"))
    if categories == "coco":
        instances.append((E, GIRAFFE, False))
    index = VOC_INDEX if categories == "voc" else ALL_INDEX
    image, mask = dataset[0]
    assert image.shape == (3, H, W)
    assert torch.equal(mask, expected_mask(index, instances, overlap == "torchvision"))


def test_explicit_pixels_of_the_category_rule(coco_root: Path) -> None:
    mask = COCOSegmentation(coco_root, "val")[0][1]
    person, dog = VOC_INDEX[PERSON], VOC_INDEX[DOG]
    assert mask[5, 6] == person  # two persons overlap: still a person
    assert mask[8, 10] == 255  # person and dog
    assert mask[12, 10] == dog and mask[12, 14] == dog  # the giraffe is background for VOC
    assert mask[13, 0] == 255  # crowd
    assert mask[0, 0] == 0 and mask[13, 18] == 0
    torchvision = COCOSegmentation(coco_root, "val", overlap="torchvision")[0][1]
    assert torchvision[5, 6] == 255 and torchvision[13, 0] == person


def test_classes_images_without_annotations_and_drop_empty(coco_root: Path) -> None:
    voc = build_dataset("coco", root=coco_root, split="val")
    assert voc.classes == VOC_CLASSES and voc.image_ids == [139, 285, 632]
    assert torch.equal(voc[1][1], torch.zeros(H, W, dtype=torch.int64))
    assert torch.equal(voc[2][1], torch.zeros(8, 6, dtype=torch.int64))
    assert COCOSegmentation(coco_root, "val", drop_empty=True).image_ids == [139]
    everything = COCOSegmentation(coco_root, "val", categories="coco", drop_empty=True)
    assert everything.image_ids == [139, 632] and len(everything.classes) == 81
    assert everything.classes[ALL_INDEX[GIRAFFE]] == "giraffe"
    assert everything[1][1][1:4, 1:4].eq(ALL_INDEX[GIRAFFE]).all()
    assert everything[1][1].eq(ALL_INDEX[GIRAFFE]).sum() == 9


def test_bad_options_and_missing_files(coco_root: Path, tmp_path: Path) -> None:
    expected = "categories='stuff': expected one of 'file', 'coco', 'voc'"
    with pytest.raises(ValueError, match=expected):
        COCOSegmentation(coco_root, "val", categories="stuff")
    with pytest.raises(ValueError, match="overlap='any'"):
        COCOSegmentation(coco_root, "val", overlap="any")
    with pytest.raises(DatasetNotFoundError, match=r"(?s)instances_train2017\.json'.*val2017/"):
        COCOSegmentation(coco_root, "train")
    (coco_root / "val2017").rename(coco_root / "images")
    with pytest.raises(DatasetNotFoundError, match=r"image folder '.*val2017' does not exist"):
        COCOSegmentation(coco_root, "val")
    (coco_root / "images").rename(coco_root / "val2017")
    bad = coco_root / "annotations" / "instances_val2017.json"
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match="is not a COCO annotation file"):
        COCOSegmentation(coco_root, "val")


def test_old_name_of_the_coco_category_set_still_reads(coco_root: Path) -> None:
    with pytest.warns(FutureWarning, match="categories='all' is now called 'coco'"):
        old = COCODetection(coco_root, "val", categories="all")
    assert old.classes == COCODetection(coco_root, "val", categories="coco").classes


def test_image_of_another_size_than_its_record_names_both(coco_root: Path) -> None:
    write_image(coco_root / "val2017" / "000000000285.jpg", random_rgb(H, W + 1))
    dataset = COCOSegmentation(coco_root, "val")
    with pytest.raises(DataFormatError) as info:
        dataset[1]
    assert info.value.file.endswith("instances_val2017.json")
    assert f"mask is {H}x{W} but its image '" in info.value.reason
    assert f"000000000285.jpg' is {H}x{W + 1}" in info.value.reason


# The detection view: the annotations' boxes.
# 0-based classes, hand-counted: position among COCO's 80 sorted thing ids (id 12 is missing,
# so dog, id 18, is the 17th: 16), and VOC's object order without the background.
OBJECT_ALL_INDEX = {PERSON: 0, DOG: 16, GIRAFFE: 23}
OBJECT_VOC_INDEX = {PERSON: 14, DOG: 11}


def annotation(image_id: int, category: int, bbox: list, **extra) -> dict:
    return {
        "image_id": image_id,
        "category_id": category,
        "bbox": bbox,
        "segmentation": [],
        **extra,
    }


@pytest.fixture
def coco_boxes_root(tmp_path: Path) -> Path:
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
    return write_coco(tmp_path / "coco", "val", images, annotations, COCO_CATEGORIES)


def rewrite_annotations(root: Path, change) -> None:
    path = root / "annotations" / "instances_val2017.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_all_categories_xyxy_boxes_and_crowd_flags(coco_boxes_root: Path) -> None:
    dataset = COCODetection(coco_boxes_root, "val")
    assert dataset.num_classes == 80 and dataset.task == "detection"
    assert dataset.classes == tuple(COCO_CATEGORIES[c] for c in sorted(COCO_CATEGORIES))
    assert (
        dataset.classes[OBJECT_ALL_INDEX[DOG]] == "dog"
        and dataset.classes[OBJECT_ALL_INDEX[GIRAFFE]] == "giraffe"
    )
    image, target = dataset[0]
    assert image.shape == (3, H, W)
    assert target["boxes"].tolist() == [[2, 3, 7, 7], [0.5, 1.25, 20, 16], [10, 10, 20, 16]]
    assert target["labels"].tolist() == [
        OBJECT_ALL_INDEX[PERSON],
        OBJECT_ALL_INDEX[DOG],
        OBJECT_ALL_INDEX[GIRAFFE],
    ]
    assert target["iscrowd"].tolist() == [0, 1, 0] and target["difficult"].tolist() == [0, 0, 0]
    assert target["image_id"] == 139 and target["orig_size"] == target["image_size"] == (H, W)


def test_images_without_annotations_are_negatives_unless_dropped(coco_boxes_root: Path) -> None:
    dataset = build_dataset("coco", coco_boxes_root, "val", task="detection")
    assert isinstance(dataset, COCODetection) and dataset.image_ids == [139, 285, 632]
    _, empty = dataset[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert empty["image_id"] == 285
    assert COCODetection(coco_boxes_root, "val", drop_empty=True).image_ids == [139, 632]


def test_voc_categories_leave_other_objects_out(coco_boxes_root: Path) -> None:
    dataset = COCODetection(coco_boxes_root, "val", categories="voc", drop_empty=True)
    assert dataset.classes == VOC_CLASSES[1:] and dataset.image_ids == [139]
    target = dataset[0][1]
    assert target["labels"].tolist() == [OBJECT_VOC_INDEX[PERSON], OBJECT_VOC_INDEX[DOG]]
    assert target["iscrowd"].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        # COCO has no category 12, so its file does not declare it
        ({"category_id": 12}, r"annotation 1 of image 139 \('000000000139\.jpg'\): category id 12"),
        ({"bbox": [2, 3, -1, 4]}, r"annotation 1 of image 139 .*bbox \[2, 3, -1, 4\].*negative"),
        ({"bbox": [15, 3, 8, 4]}, r"annotation 1 .*reaches outside the 16x20 image"),
        ({"bbox": None}, r"annotation 1 of image 139 .*: bbox None is not \[x, y, width, height\]"),
        ({"bbox": [1, 2, 3]}, r"bbox \[1, 2, 3\] is not \[x, y, width, height\]"),
    ],
)
def test_bad_annotations_name_the_file_and_the_annotation(
    coco_boxes_root: Path, bad: dict, message: str
) -> None:
    rewrite_annotations(coco_boxes_root, lambda doc: doc["annotations"][0].update(bad))
    dataset = COCODetection(coco_boxes_root, "val")
    with pytest.raises(DataFormatError, match=message) as info:
        dataset[0]
    assert info.value.file.endswith("instances_val2017.json")


def test_missing_fields_and_size_mismatch(coco_boxes_root: Path) -> None:
    rewrite_annotations(coco_boxes_root, lambda doc: doc["annotations"][0].pop("id"))
    with pytest.raises(DataFormatError, match="an entry lacks the field 'id'"):
        COCODetection(coco_boxes_root, "val")
    rewrite_annotations(coco_boxes_root, lambda doc: doc["annotations"][0].update(id=1))
    rewrite_annotations(coco_boxes_root, lambda doc: doc["images"][2].pop("height"))
    with pytest.raises(DataFormatError, match=r"image 632 .* has no integer height and width"):
        COCODetection(coco_boxes_root, "val")[2]
    write_image(coco_boxes_root / "val2017" / "000000000285.jpg", random_rgb(H, W + 1))
    with pytest.raises(DataFormatError, match=r"records the image '.*285\.jpg' as 16x20 but it"):
        COCODetection(coco_boxes_root, "val")[1]


def test_skip_invalid_logs_each_bad_annotation_of_one_file(
    coco_boxes_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def break_two(document: dict) -> None:
        document["annotations"][0]["bbox"] = [2, 3, -1, 4]
        document["annotations"][4]["category_id"] = 12

    rewrite_annotations(coco_boxes_root, break_two)
    dataset = COCODetection(coco_boxes_root, "val", skip_invalid=True)
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        assert dataset[0][1]["image_id"] == 285
        # 632 is bad too: the search wraps around past 139 to 285
        assert dataset[2][1]["image_id"] == 285
    assert dataset.skipped == 2 and len(caplog.records) == 2
    assert [Path(p.file).name for p in dataset.check()] == ["instances_val2017.json"] * 2
