from __future__ import annotations

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

from fcnlab.data.datasets import COCOSegmentation
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import VOC_CLASSES
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
    categories = {PERSON: "person", DOG: "dog", GIRAFFE: "giraffe"}
    return write_coco(tmp_path / "coco", "val", images, annotations, categories)


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
@pytest.mark.parametrize("categories", ["voc", "all"])
def test_masks_follow_the_overlap_rules(coco_root: Path, categories: str, overlap: str) -> None:
    dataset = COCOSegmentation(coco_root, "val", categories=categories, overlap=overlap)
    instances = [(A, PERSON, False), (B, PERSON, False), (C, DOG, False)]
    # The crowd counts as an ordinary person for torchvision; the crowd rule handles it otherwise.
    instances.append((D, PERSON, overlap == "category"))
    if categories == "all":
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
    everything = COCOSegmentation(coco_root, "val", categories="all", drop_empty=True)
    assert everything.image_ids == [139, 632] and len(everything.classes) == 81
    assert everything.classes[ALL_INDEX[GIRAFFE]] == "giraffe"
    assert everything[1][1][1:4, 1:4].eq(ALL_INDEX[GIRAFFE]).all()
    assert everything[1][1].eq(ALL_INDEX[GIRAFFE]).sum() == 9


def test_bad_options_and_missing_files(coco_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="categories='stuff': expected one of 'voc', 'all'"):
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
    bad.write_text('{"images": [], "annotations": [], "categories": [{"id": 91, "name": "x"}]}')
    with pytest.raises(DataFormatError, match=r"category ids \[91\] are not among COCO's 80"):
        COCOSegmentation(coco_root, "val")
    bad.write_text("{not json")
    with pytest.raises(DataFormatError, match="is not a COCO annotation file"):
        COCOSegmentation(coco_root, "val")


def test_image_of_another_size_than_its_record_names_both(coco_root: Path) -> None:
    write_image(coco_root / "val2017" / "000000000285.jpg", random_rgb(H, W + 1))
    dataset = COCOSegmentation(coco_root, "val")
    with pytest.raises(DataFormatError) as info:
        dataset[1]
    assert info.value.file.endswith("instances_val2017.json")
    assert f"mask is {H}x{W} but its image '" in info.value.reason
    assert f"000000000285.jpg' is {H}x{W + 1}" in info.value.reason
