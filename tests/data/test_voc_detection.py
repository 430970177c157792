from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from helpers.fixtures import random_rgb, voc_annotation_xml, write_image, write_voc_detection

from fcnlab.data import build_dataset, detection_eval_transforms
from fcnlab.data.box_transforms import BoxRandomHorizontalFlip
from fcnlab.data.datasets import VOCDetection
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import VOC_CLASSES

# 0-based object classes: the segmentation index minus the background.
PERSON, DOG, CAT = 14, 11, 7
SIZES = {"2007_000027": (20, 30), "2008_000003": (16, 12)}
OBJECTS = {
    "2007_000027": [
        {"name": "person", "bndbox": (5, 3, 12, 10), "difficult": 0},
        {"name": "dog", "bndbox": (1, 1, 30, 20), "difficult": 1},  # the whole image
    ],
    "2008_000003": [{"name": "cat", "bndbox": (2, 2, 4, 4)}],  # no <difficult>: 0
}


@pytest.fixture
def voc(tmp_path: Path) -> Path:
    splits = {"train": ["2007_000027"], "val": ["2008_000003"]}
    splits["trainval"] = splits["train"] + splits["val"]
    return write_voc_detection(tmp_path / "VOC2012", splits, OBJECTS, SIZES)


def rewrite(root: Path, image_id: str, objects: list[dict], size=None) -> None:
    xml = voc_annotation_xml(f"{image_id}.jpg", size or SIZES[image_id], objects)
    (root / "Annotations" / f"{image_id}.xml").write_text(xml)


def test_boxes_labels_and_difficult_flags(voc: Path) -> None:
    dataset = VOCDetection(voc, "trainval")
    assert dataset.classes == VOC_CLASSES[1:] and dataset.num_classes == 20
    assert dataset.task == "detection" and len(dataset) == 2
    image, target = dataset[0]
    assert image.shape == (3, 20, 30) and image.dtype == torch.float32
    # 1-based inclusive xmin=5..xmax=12 are 0-based pixels 4..11: edges x1 = 4, x2 = 12
    assert target["boxes"].tolist() == [[4, 2, 12, 10], [0, 0, 30, 20]]
    assert target["labels"].tolist() == [PERSON, DOG]
    assert VOC_CLASSES[PERSON + 1] == "person" and VOC_CLASSES[DOG + 1] == "dog"
    assert target["difficult"].tolist() == [0, 1] and target["iscrowd"].tolist() == [0, 0]
    assert target["image_id"] == 0 and target["orig_size"] == target["image_size"] == (20, 30)
    _, cat = dataset[1]
    assert cat["boxes"].tolist() == [[1, 1, 4, 4]] and cat["labels"].tolist() == [CAT]
    assert cat["difficult"].tolist() == [0] and dataset.ids[cat["image_id"]] == "2008_000003"


def test_keep_difficult_false_leaves_difficult_objects_out(voc: Path) -> None:
    target = VOCDetection(voc, "train", keep_difficult=False)[0][1]
    assert target["labels"].tolist() == [PERSON] and target["difficult"].tolist() == [0]
    assert len(target["boxes"]) == len(target["iscrowd"]) == 1


def test_registry_and_transforms_move_the_boxes(voc: Path) -> None:
    dataset = build_dataset(
        "voc", voc, "train", transforms=detection_eval_transforms((10, 60), mean=None),
        task="detection",
    )  # fmt: skip
    assert isinstance(dataset, VOCDetection)
    image, target = dataset[0]
    assert image.shape == (3, 10, 60) and target["image_size"] == (10, 60)
    assert target["orig_size"] == (20, 30)
    assert target["boxes"].tolist() == [[8, 1, 24, 5], [0, 0, 60, 10]]
    flipped = VOCDetection(voc, "train", transforms=BoxRandomHorizontalFlip(1.0))[0][1]
    assert flipped["boxes"].tolist() == [[18, 2, 26, 10], [0, 0, 30, 20]]


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([{"name": "aeroplan", "bndbox": (1, 1, 2, 2)}], r"object 1: class 'aeroplan' is not"),
        ([{"name": "dog", "bndbox": (1, 1, None, 2)}], r"object 1 \('dog'\) has no <bndbox/xmax>"),
        ([{"name": "dog", "bndbox": None}], r"object 1 \('dog'\) has no <bndbox/xmin>"),
        ([{"bndbox": (1, 1, 2, 2)}], "object 1 has no <name>"),
        ([{"name": "dog", "bndbox": (1, 1, "ten", 2)}], r"<bndbox/xmax> is 'ten', not a number"),
        (
            [{"name": "cat", "bndbox": (1, 1, 2, 2)}, {"name": "dog", "bndbox": (10, 1, 5, 4)}],
            r"object 2 \('dog', xmin 10 ymin 1 xmax 5 ymax 4\): .* negative width",
        ),
        (
            [{"name": "dog", "bndbox": (1, 1, 40, 4)}],
            r"object 1 \('dog', .*\): box .* reaches outside the 20x30 image",
        ),
    ],
)
def test_bad_objects_name_the_file_and_the_object(voc: Path, objects, message: str) -> None:
    rewrite(voc, "2007_000027", objects)
    dataset = VOCDetection(voc, "train")
    with pytest.raises(DataFormatError, match=message) as info:
        dataset[0]
    assert info.value.file == str(voc / "Annotations" / "2007_000027.xml")


def test_size_mismatch_broken_xml_and_missing_files(voc: Path) -> None:
    rewrite(voc, "2007_000027", OBJECTS["2007_000027"], size=(20, 31))
    with pytest.raises(DataFormatError, match=r"records the image '.*2007_000027\.jpg' as 20x31"):
        VOCDetection(voc, "train")[0]
    (voc / "Annotations" / "2007_000027.xml").write_text("<annotation><object/></annotation>")
    with pytest.raises(DataFormatError, match=r"xml: the annotation has no <size/height>"):
        VOCDetection(voc, "train")[0]
    (voc / "Annotations" / "2007_000027.xml").write_text("<annotation><size>")
    with pytest.raises(DataFormatError, match=r"2007_000027\.xml: is not valid XML"):
        VOCDetection(voc, "train")[0]
    (voc / "Annotations" / "2007_000027.xml").unlink()
    with pytest.raises(DataFormatError, match="annotation file does not exist"):
        VOCDetection(voc, "train")[0]
    (voc / "ImageSets" / "Main" / "val.txt").unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)split list '.*Main/val\.txt'.*Annotations/"
    ):
        VOCDetection(voc, "val")
    with pytest.raises(ValueError, match="no split 'extra'"):
        VOCDetection(voc, "extra")


def test_skip_invalid_logs_the_bad_sample_and_returns_the_next(
    voc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite(voc, "2007_000027", [{"name": "unicorn", "bndbox": (1, 1, 2, 2)}])
    write_image(voc / "JPEGImages" / "2008_000003.jpg", random_rgb(16, 12))
    dataset = VOCDetection(voc, "trainval", skip_invalid=True)
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        image, target = dataset[0]
    assert image.shape == (3, 16, 12) and target["labels"].tolist() == [CAT]
    assert dataset.skipped == 1 and "class 'unicorn'" in caplog.records[0].getMessage()
    problems = dataset.check()
    assert [Path(p.file).name for p in problems] == ["2007_000027.xml"]
