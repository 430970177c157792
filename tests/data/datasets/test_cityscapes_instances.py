"""The Cityscapes instance view: ``*_gtFine_instanceIds.png`` (16-bit) read into the objects of
the 8 evaluated instance classes; groups are crowds, classes without instances stay out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import random_rgb, write_image
from helpers.instance_fixtures import write_cityscapes_instances, write_instance_ids_png

from fcnlab.data.datasets.cityscapes import CITYSCAPES_INSTANCE_CLASSES, CityscapesInstances
from fcnlab.data.io import DataFormatError
from fcnlab.data.registry import build_dataset

# The labels of cityscapesScripts' helpers/labels.py with hasInstances=True and
# ignoreInEval=False, by (name, id): what evalInstanceLevelSemanticLabeling evaluates.
EVALUATED = [
    ("person", 24), ("rider", 25), ("car", 26), ("truck", 27), ("bus", 28),
    ("train", 31), ("motorcycle", 32), ("bicycle", 33),
]  # fmt: skip
PERSON, CAR, BICYCLE = 0, 2, 7
STEM = "frankfurt_000000_000294"


def street() -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """A 12x16 instanceIds map and its objects as (stored id, class, crowd), in id order.

    road (7) and sky (23) are stuff; person 24000 and 24001 touch; car 26003; a car group (plain
    id 26: cars not told apart); a caravan (29000, ignoreInEval); a trailer group (30);
    bicycle 33000; an ego-vehicle strip (1).
    """
    ids = np.full((12, 16), 7, dtype=np.int64)
    ids[0:3] = 23
    ids[3:8, 0:2] = 24000
    ids[3:8, 2:4] = 24001
    ids[4:8, 5:9] = 26003
    ids[5:8, 10:14] = 26
    ids[8:10, 0:3] = 29000
    ids[8:10, 4:6] = 30
    ids[9:11, 10:15] = 33000
    ids[11] = 1
    objects = [(26, CAR, 1), (24000, PERSON, 0), (24001, PERSON, 0), (26003, CAR, 0)]
    return ids, [*objects, (33000, BICYCLE, 0)]


def test_the_eight_classes_are_the_evaluated_instance_labels() -> None:
    assert tuple(name for name, _ in EVALUATED) == CITYSCAPES_INSTANCE_CLASSES


@pytest.mark.parametrize("encoder", ["pil", "raw"])
def test_objects_groups_and_left_out_classes_pixel_for_pixel(tmp_path: Path, encoder: str) -> None:
    ids, objects = street()
    root = write_cityscapes_instances(tmp_path, "val", "frankfurt", {STEM: ids}, encoder)
    dataset = CityscapesInstances(root, "val")
    assert dataset.task == "instance" and dataset.num_classes == 8
    assert dataset.samples[0][1].name == f"{STEM}_gtFine_instanceIds.png"
    image, target = dataset[0]
    assert image.shape == (3, 12, 16)
    expected = torch.from_numpy(np.stack([ids == value for value, _, _ in objects]))
    assert target["masks"].dtype == torch.bool and torch.equal(target["masks"], expected)
    assert target["labels"].tolist() == [label for _, label, _ in objects]
    # the car group is a crowd: never ground truth to find, a prediction on it is ignored
    assert target["iscrowd"].tolist() == [crowd for _, _, crowd in objects]
    # hand-worked boxes of the id rectangles above
    assert target["boxes"].tolist() == [
        [10, 5, 14, 8],
        [0, 3, 2, 8],
        [2, 3, 4, 8],
        [5, 4, 9, 8],
        [10, 9, 15, 11],
    ]
    # the caravan, the trailer group, road, sky and the ego vehicle belong to no instance
    covered = target["masks"].any(0)
    for left_out in (29000, 30, 7, 23, 1):
        assert not covered[torch.from_numpy(ids == left_out)].any(), left_out
    assert target["image_id"] == 0 and target["orig_size"] == (12, 16)


def test_an_image_without_objects_and_the_registry(tmp_path: Path) -> None:
    ids, _ = street()
    stuff = np.where(ids >= 24, 7, ids)
    root = write_cityscapes_instances(
        tmp_path, "train", "aachen", {"aachen_000000_000019": stuff, "aachen_000001_000019": ids}
    )
    dataset = build_dataset("cityscapes", root, "train", task="instance")
    assert isinstance(dataset, CityscapesInstances)
    _, empty = dataset[0]
    assert empty["masks"].shape == (0, 12, 16) and empty["boxes"].shape == (0, 4)
    assert dataset[1][1]["image_id"] == 1 and len(dataset[1][1]["labels"]) == 5


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (7001, "7001"),  # road * 1000 + 1: road has no instances
        (40, "40"),  # not a label id
        (34000, "34000"),  # label 34 does not exist
    ],
)
def test_values_that_are_no_label_or_instance_id_are_named(
    tmp_path: Path, value: int, shown: str
) -> None:
    ids, _ = street()
    ids[0, 0] = value
    root = write_cityscapes_instances(tmp_path, "val", "frankfurt", {STEM: ids})
    with pytest.raises(DataFormatError) as info:
        CityscapesInstances(root, "val")[0]
    assert info.value.file.endswith(f"{STEM}_gtFine_instanceIds.png")
    assert info.value.reason.startswith(
        f"instance ids {shown} are neither Cityscapes label ids (0-33) nor label_id * 1000 + k"
    )


def test_a_label_map_of_another_size_names_the_mask_of_the_first_object(tmp_path: Path) -> None:
    ids, _ = street()
    root = write_cityscapes_instances(tmp_path, "val", "frankfurt", {STEM: ids})
    write_image(root / "leftImg8bit" / "val" / "frankfurt" / f"{STEM}_leftImg8bit.png",
                random_rgb(24, 32))  # fmt: skip
    with pytest.raises(DataFormatError) as info:
        CityscapesInstances(root, "val")[0]
    assert info.value.reason.startswith("mask of instance 26 (car group) is 12x16 but its image")
    assert "is 24x32 (height x width)" in info.value.reason


def test_skip_invalid_counts_the_bad_file(tmp_path: Path) -> None:
    ids, _ = street()
    root = write_cityscapes_instances(
        tmp_path, "val", "lindau", {"lindau_000000_000019": ids, "lindau_000001_000019": ids}
    )
    bad = ids.copy()
    bad[0, 0] = 7001
    write_instance_ids_png(
        root / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_instanceIds.png", bad
    )
    dataset = CityscapesInstances(root, "val", skip_invalid=True)
    assert dataset[0][1]["image_id"] == 1 and dataset.skipped == 1
    assert len(dataset.check()) == 1
