from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import (
    random_rgb,
    voc_annotation_xml,
    write_image,
    write_palette_png,
    write_sbd,
    write_voc,
    write_voc_detection,
)

from fcnlab.data.datasets import VOCDetection, VOCSegmentation, read_sbd_mask
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import VOC_CLASSES, voc_palette
from fcnlab.data.registry import build_dataset
from fcnlab.data.transforms import RandomHorizontalFlip, eval_transforms


def object_mask(label: int, shape: tuple[int, int] = (10, 12), top: int = 2) -> np.ndarray:
    """Background with one box of ``label`` and VOC's 255 border one pixel around it."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top - 1 : top + 5, 2:9] = 255
    mask[top : top + 4, 3:8] = label
    return mask


@pytest.fixture
def voc(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    masks = {
        "2007_000032": object_mask(1),
        "2007_000033": object_mask(15),
        "2008_000001": object_mask(20),
    }
    splits = {"train": ["2007_000032", "2007_000033"], "val": ["2008_000001"]}
    splits["trainval"] = splits["train"] + splits["val"]
    return write_voc(tmp_path / "VOCdevkit" / "VOC2012", splits, masks), masks


def as_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask.astype(np.int64))


def test_reads_palette_masks_as_indices_with_border_kept(voc) -> None:
    root, masks = voc
    dataset = VOCSegmentation(root, "train")
    assert len(dataset) == 2 and dataset.classes == VOC_CLASSES and dataset.num_classes == 21
    assert dataset.palette.shape == (21, 3)
    for index, image_id in enumerate(["2007_000032", "2007_000033"]):
        image, mask = dataset[index]
        assert image.shape == (3, 10, 12) and image.dtype == torch.float32
        assert torch.equal(mask, as_tensor(masks[image_id]))
    assert set(dataset[1][1].unique().tolist()) == {0, 15, 255}
    assert len(VOCSegmentation(root, "trainval")) == 3


def test_registry_builds_voc(voc) -> None:
    root, masks = voc
    dataset = build_dataset("voc", root=root, split="val")
    assert isinstance(dataset, VOCSegmentation)
    assert torch.equal(dataset[0][1], as_tensor(masks["2008_000001"]))


def test_missing_root_split_list_and_unknown_split(voc, tmp_path: Path) -> None:
    root, _ = voc
    with pytest.raises(DatasetNotFoundError, match=r"(?s)'.*nowhere' does not exist.*JPEGImages/"):
        VOCSegmentation(tmp_path / "nowhere")
    (root / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"(?s)split list '.*val\.txt'.*ImageSets/"):
        VOCSegmentation(root, "val")
    with pytest.raises(ValueError, match="no split 'test'"):
        VOCSegmentation(root, "test")


def test_out_of_range_mask_value_names_file_and_value(voc) -> None:
    root, _ = voc
    bad = object_mask(1)
    bad[0, 0] = 21
    write_palette_png(root / "SegmentationClass" / "2007_000033.png", bad)
    dataset = VOCSegmentation(root, "train")
    with pytest.raises(DataFormatError, match=r"2007_000033\.png: mask values 21 \(1 pixels\)"):
        dataset[1]


def test_colour_mask_error_says_what_voc_masks_are(voc) -> None:
    # A SegmentationClass PNG re-saved as RGB by an editor: VOC takes no palette option, so the
    # error must not ask for one.
    root, masks = voc
    colours = voc_palette(256)[masks["2007_000033"]]
    write_image(root / "SegmentationClass" / "2007_000033.png", colours)
    with pytest.raises(DataFormatError) as info:
        VOCSegmentation(root, "train")[1]
    assert info.value.reason.startswith(
        "mask is a colour (RGB) image; VOC's SegmentationClass masks are palette ('P') PNGs "
        "whose stored values are the classes, so restore this file from the devkit or save it "
        "again as a palette PNG of class indices"
    )
    assert "pass a palette" not in str(info.value)


def test_sbd_adds_its_images_except_val_and_prefers_voc_annotations(voc, tmp_path: Path) -> None:
    root, masks = voc
    sbd_masks = {
        "2007_000033": object_mask(7),  # in VOC train: VOC's own mask wins
        "2008_000001": object_mask(9),  # in VOC val: never trained on
        "2008_000002": object_mask(12, top=4),  # SBD only, image only in SBD's img/
    }
    sbd = write_sbd(tmp_path / "benchmark_RELEASE" / "dataset", sbd_masks)
    dataset = VOCSegmentation(root, "train", sbd_root=sbd)
    assert [image.stem for image, _ in dataset.samples] == [
        "2007_000032",
        "2007_000033",
        "2008_000002",
    ]
    assert torch.equal(dataset[1][1], as_tensor(masks["2007_000033"]))
    image, mask = dataset[2]
    assert dataset.samples[2][0] == sbd / "img" / "2008_000002.jpg"
    assert image.shape == (3, 10, 12) and torch.equal(mask, as_tensor(sbd_masks["2008_000002"]))
    with pytest.raises(ValueError, match="SBD images are for training"):
        VOCSegmentation(root, "val", sbd_root=sbd)


def test_sbd_mask_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 MAT-file, but nothing after")
    with pytest.raises(DataFormatError, match=r"broken\.mat: cannot read SBD mask"):
        read_sbd_mask(tmp_path / "broken.mat")
    from scipy.io import savemat

    savemat(tmp_path / "other.mat", {"GTinst": {"Segmentation": np.zeros((2, 2))}})
    with pytest.raises(DataFormatError, match=r"other\.mat: SBD mask has no GTcls"):
        read_sbd_mask(tmp_path / "other.mat")


def test_sbd_without_scipy_names_the_extra(voc, tmp_path: Path, monkeypatch) -> None:
    root, _ = voc
    (tmp_path / "sbd" / "cls").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match=r"needs scipy: pip install 'fcnlab\[sbd\]'"):
        VOCSegmentation(root, "train", sbd_root=tmp_path / "sbd")


# The detection view: Annotations/*.xml boxes.
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
def voc_boxes(tmp_path: Path) -> Path:
    splits = {"train": ["2007_000027"], "val": ["2008_000003"]}
    splits["trainval"] = splits["train"] + splits["val"]
    return write_voc_detection(tmp_path / "VOC2012", splits, OBJECTS, SIZES)


def rewrite(root: Path, image_id: str, objects: list[dict], size=None) -> None:
    xml = voc_annotation_xml(f"{image_id}.jpg", size or SIZES[image_id], objects)
    (root / "Annotations" / f"{image_id}.xml").write_text(xml)


def test_boxes_labels_and_difficult_flags(voc_boxes: Path) -> None:
    dataset = VOCDetection(voc_boxes, "trainval")
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


def test_keep_difficult_false_leaves_difficult_objects_out(voc_boxes: Path) -> None:
    target = VOCDetection(voc_boxes, "train", keep_difficult=False)[0][1]
    assert target["labels"].tolist() == [PERSON] and target["difficult"].tolist() == [0]
    assert len(target["boxes"]) == len(target["iscrowd"]) == 1


def test_registry_and_transforms_move_the_boxes(voc_boxes: Path) -> None:
    dataset = build_dataset(
        "voc", voc_boxes, "train", transforms=eval_transforms((10, 60), mean=None),
        task="detection",
    )  # fmt: skip
    assert isinstance(dataset, VOCDetection)
    image, target = dataset[0]
    assert image.shape == (3, 10, 60) and target["image_size"] == (10, 60)
    assert target["orig_size"] == (20, 30)
    assert target["boxes"].tolist() == [[8, 1, 24, 5], [0, 0, 60, 10]]
    flipped = VOCDetection(voc_boxes, "train", transforms=RandomHorizontalFlip(1.0))[0][1]
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
def test_bad_objects_name_the_file_and_the_object(voc_boxes: Path, objects, message: str) -> None:
    rewrite(voc_boxes, "2007_000027", objects)
    dataset = VOCDetection(voc_boxes, "train")
    with pytest.raises(DataFormatError, match=message) as info:
        dataset[0]
    assert info.value.file == str(voc_boxes / "Annotations" / "2007_000027.xml")


def test_size_mismatch_broken_xml_and_missing_files(voc_boxes: Path) -> None:
    rewrite(voc_boxes, "2007_000027", OBJECTS["2007_000027"], size=(20, 31))
    with pytest.raises(DataFormatError, match=r"records the image '.*2007_000027\.jpg' as 20x31"):
        VOCDetection(voc_boxes, "train")[0]
    (voc_boxes / "Annotations" / "2007_000027.xml").write_text("<annotation><object/></annotation>")
    with pytest.raises(DataFormatError, match=r"xml: the annotation has no <size/height>"):
        VOCDetection(voc_boxes, "train")[0]
    (voc_boxes / "Annotations" / "2007_000027.xml").write_text("<annotation><size>")
    with pytest.raises(DataFormatError, match=r"2007_000027\.xml: is not valid XML"):
        VOCDetection(voc_boxes, "train")[0]
    (voc_boxes / "Annotations" / "2007_000027.xml").unlink()
    with pytest.raises(DataFormatError, match="annotation file does not exist"):
        VOCDetection(voc_boxes, "train")[0]
    (voc_boxes / "ImageSets" / "Main" / "val.txt").unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"(?s)split list '.*Main/val\.txt'.*Annotations/"
    ):
        VOCDetection(voc_boxes, "val")
    with pytest.raises(ValueError, match="no split 'extra'"):
        VOCDetection(voc_boxes, "extra")


def test_skip_invalid_logs_the_bad_sample_and_returns_the_next(
    voc_boxes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rewrite(voc_boxes, "2007_000027", [{"name": "unicorn", "bndbox": (1, 1, 2, 2)}])
    write_image(voc_boxes / "JPEGImages" / "2008_000003.jpg", random_rgb(16, 12))
    dataset = VOCDetection(voc_boxes, "trainval", skip_invalid=True)
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        image, target = dataset[0]
    assert image.shape == (3, 16, 12) and target["labels"].tolist() == [CAT]
    assert dataset.skipped == 1 and "class 'unicorn'" in caplog.records[0].getMessage()
    problems = dataset.check()
    assert [Path(p.file).name for p in problems] == ["2007_000027.xml"]
