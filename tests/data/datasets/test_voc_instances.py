"""The VOC instance view: ``SegmentationObject/`` instance numbers classed by
``SegmentationClass/``, both palette PNGs as the devkit ships them; 255 belongs to no instance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import random_rgb, write_image, write_palette_png
from helpers.instance_fixtures import write_voc_instances
from PIL import Image

from fcnlab.data.datasets.voc import VOCInstances
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import VOC_CLASSES
from fcnlab.data.registry import build_dataset

PERSON, DOG = VOC_CLASSES.index("person"), VOC_CLASSES.index("dog")  # 15, 12 in the devkit


def annotated_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 10x12 image as VOC annotates it: two persons that touch (instances 1 and 2: one
    region in the class map), a dog (instance 3), each outlined by a 255 border that belongs to no
    instance, and a 255 void patch."""
    objects = np.zeros((10, 12), dtype=np.uint8)
    objects[1:5, 1:4] = 1
    objects[1:5, 4:7] = 2  # touches instance 1: columns 3 and 4 are neighbours
    objects[6:9, 8:11] = 3
    objects[0, 1:7] = 255  # border above the persons
    objects[5, 1:7] = 255  # and below
    objects[6:9, 7] = 255  # border left of the dog
    objects[9, 0:2] = 255  # void
    classes = np.zeros_like(objects)
    classes[objects == 1] = PERSON
    classes[objects == 2] = PERSON
    classes[objects == 3] = DOG
    classes[objects == 255] = 255
    return objects, classes


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    objects, classes = annotated_pair()
    empty = np.zeros((6, 8), dtype=np.uint8)
    return write_voc_instances(
        tmp_path / "VOC2012",
        {"train": ["2007_000032"], "val": ["2007_000033", "2007_000039"]},
        {"2007_000032": objects, "2007_000033": empty, "2007_000039": objects},
        {"2007_000032": classes, "2007_000033": empty, "2007_000039": classes},
    )


def test_instances_are_the_object_numbers_pixel_for_pixel(voc_root: Path) -> None:
    dataset = VOCInstances(voc_root, "train")
    assert dataset.task == "instance" and dataset.classes == VOC_CLASSES[1:]
    image, target = dataset[0]
    assert image.shape == (3, 10, 12)
    objects, _ = annotated_pair()
    expected = torch.from_numpy(np.stack([objects == k for k in (1, 2, 3)]))
    assert target["masks"].dtype == torch.bool and torch.equal(target["masks"], expected)
    # 0-based object classes: the devkit's class minus the background
    assert target["labels"].tolist() == [PERSON - 1, PERSON - 1, DOG - 1]
    assert dataset.classes[target["labels"][2]] == "dog"
    # hand-worked boxes: rows 1-4 x columns 1-3, rows 1-4 x columns 4-6, rows 6-8 x columns 8-10
    assert target["boxes"].tolist() == [[1, 1, 4, 5], [4, 1, 7, 5], [8, 6, 11, 9]]
    assert target["iscrowd"].tolist() == [0, 0, 0] and target["difficult"].tolist() == [0, 0, 0]
    assert target["image_id"] == 0 and target["orig_size"] == target["image_size"] == (10, 12)


def test_border_pixels_belong_to_no_instance_and_touching_persons_stay_two(voc_root: Path) -> None:
    objects, classes = annotated_pair()
    masks = VOCInstances(voc_root, "train")[0][1]["masks"]
    assert not masks[:, torch.from_numpy(objects == 255)].any()
    # one region of class person in the class map, two instances
    person_region = torch.from_numpy(classes == PERSON)
    assert torch.equal(masks[0] | masks[1], person_region) and not (masks[0] & masks[1]).any()


def test_splits_empty_images_and_the_registry(voc_root: Path) -> None:
    dataset = build_dataset("voc", voc_root, "val", task="instance")
    assert isinstance(dataset, VOCInstances) and dataset.ids == ["2007_000033", "2007_000039"]
    _, empty = dataset[0]
    assert empty["masks"].shape == (0, 6, 8) and empty["boxes"].shape == (0, 4)
    assert dataset[1][1]["image_id"] == 1 and len(dataset[1][1]["labels"]) == 3
    with pytest.raises(ValueError, match="VOCInstances has no split 'test'"):
        VOCInstances(voc_root, "test")
    (voc_root / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"split list '.*val\.txt' does not exist"):
        VOCInstances(voc_root, "val")


def test_an_instance_of_two_classes_names_the_file_and_the_instance(voc_root: Path) -> None:
    _, classes = annotated_pair()
    classes[1:3, 4:7] = DOG  # the top of instance 2 is labelled dog, its bottom person
    write_palette_png(voc_root / "SegmentationClass" / "2007_000032.png", classes)
    with pytest.raises(DataFormatError) as info:
        VOCInstances(voc_root, "train")[0]
    assert info.value.file.endswith("SegmentationObject/2007_000032.png")
    assert info.value.reason.startswith(
        "instance 2 covers class 12 (dog) on 6 pixels, class 15 (person) on 6 pixels in '"
    )
    assert "an instance must be of one of the 20 object classes (1-20)" in info.value.reason


def test_an_instance_on_background_or_void_only_is_an_error(voc_root: Path) -> None:
    objects, classes = annotated_pair()
    classes[objects == 3] = 0
    write_palette_png(voc_root / "SegmentationClass" / "2007_000032.png", classes)
    with pytest.raises(DataFormatError, match=r"instance 3 covers class 0 \(background\) on 9 pix"):
        VOCInstances(voc_root, "train")[0]
    classes[objects == 3] = 255
    write_palette_png(voc_root / "SegmentationClass" / "2007_000032.png", classes)
    with pytest.raises(DataFormatError, match="instance 3 covers only void"):
        VOCInstances(voc_root, "train")[0]


def test_void_class_pixels_under_an_instance_do_not_count(voc_root: Path) -> None:
    _, classes = annotated_pair()
    classes[6, 8] = 255  # one pixel of the dog is void in the class map
    write_palette_png(voc_root / "SegmentationClass" / "2007_000032.png", classes)
    target = VOCInstances(voc_root, "train")[0][1]
    assert target["labels"][2] == DOG - 1 and target["masks"][2, 6, 8]


def test_sizes_that_differ_are_named(voc_root: Path) -> None:
    _, classes = annotated_pair()
    write_image(voc_root / "JPEGImages" / "2007_000032.jpg", random_rgb(10, 13))
    with pytest.raises(DataFormatError) as info:
        VOCInstances(voc_root, "train")[0]
    assert info.value.file.endswith("SegmentationObject/2007_000032.png")
    assert info.value.reason.startswith("mask of instance 1 is 10x12 but its image '")
    assert "2007_000032.jpg' is 10x13 (height x width)" in info.value.reason
    write_palette_png(voc_root / "SegmentationClass" / "2007_000032.png", classes[:, :11])
    with pytest.raises(DataFormatError, match=r"mask is 10x11 but its instance mask '.*' is 10x12"):
        VOCInstances(voc_root, "train")[0]


def test_a_colour_instance_mask_says_what_voc_stores(voc_root: Path) -> None:
    objects, _ = annotated_pair()
    colours = np.stack([objects * 40] * 3, axis=-1).astype(np.uint8)
    Image.fromarray(colours).save(voc_root / "SegmentationObject" / "2007_000032.png")
    with pytest.raises(DataFormatError, match="mask is a colour \\(RGB\\) image; VOC's Segmentat"):
        VOCInstances(voc_root, "train")[0]


def test_skip_invalid_counts_the_bad_image(voc_root: Path) -> None:
    objects, classes = annotated_pair()
    classes[objects == 1] = DOG
    classes[1, 1] = PERSON
    write_palette_png(voc_root / "SegmentationClass" / "2007_000039.png", classes)
    dataset = VOCInstances(voc_root, "val", skip_invalid=True)
    assert dataset[1][1]["image_id"] == 0 and dataset.skipped == 1
    assert [Path(problem.file).name for problem in dataset.check()] == ["2007_000039.png"]
