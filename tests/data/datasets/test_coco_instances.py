"""The COCO instance view: one mask per annotation from polygons, uncompressed and compressed
RLE, crowds kept with their masks, boxes derived from the masks, and every rule of the format
named by file and annotation (or skipped and counted)."""

from __future__ import annotations

import json
import logging
import re
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
    write_coco_export,
    write_image,
)
from pycocotools import mask as mask_utils

from fcnlab.data import InstanceDataset, collate_targets, train_transforms
from fcnlab.data.datasets.coco import COCOInstances
from fcnlab.data.io import DataFormatError
from fcnlab.data.palettes import COCO_CATEGORIES, VOC_CLASSES
from fcnlab.data.registry import build_dataset

H, W = 16, 20
PERSON, DOG, GIRAFFE = 1, 18, 25
# 0-based classes, hand-counted: position among COCO's 80 sorted thing ids (id 12 is missing, so
# dog, id 18, is the 17th: 16), and VOC's object order without the background.
COCO_INDEX = {PERSON: 0, DOG: 16, GIRAFFE: 23}
VOC_INDEX = {PERSON: 14, DOG: 11}


def box(top: int, left: int, bottom: int, right: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    """Binary mask of rows top..bottom-1 and columns left..right-1."""
    mask = np.zeros(size, dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def blob() -> np.ndarray:
    """An irregular (H, W) mask: a disk with a notch and a stray pixel, for the RLE paths."""
    y, x = np.mgrid[0:H, 0:W] + 0.5
    mask = (x - 13) ** 2 + (y - 6) ** 2 <= 16
    mask[6, 13:] = False
    mask[0, 0] = True
    return mask


# Image 139: two overlapping persons (polygon, compressed RLE of an irregular blob), a dog
# (uncompressed RLE), a crowd of persons (uncompressed RLE, as COCO stores crowds) and a giraffe
# (polygon); image 285 has no annotation; image 632 (8x6) one giraffe.
A = box(2, 2, 8, 10)
B = blob()
C = box(8, 10, 13, 16)
D = box(12, 0, 15, 5)
E = box(12, 14, 15, 20)


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


def rewrite_annotations(root: Path, change) -> None:
    path = root / "annotations" / "instances_val2017.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_masks_are_the_written_masks_pixel_for_pixel(coco_root: Path) -> None:
    dataset = COCOInstances(coco_root, "val")
    assert isinstance(dataset, InstanceDataset) and dataset.task == "instance"
    assert dataset.num_classes == 80 and dataset.classes[COCO_INDEX[DOG]] == "dog"
    image, target = dataset[0]
    assert image.shape == (3, H, W)
    expected = np.stack([A, B, C, D, E])
    assert target["masks"].dtype == torch.bool and target["masks"].shape == (5, H, W)
    assert torch.equal(target["masks"], torch.from_numpy(expected))
    labels = [COCO_INDEX[c] for c in (PERSON, PERSON, DOG, PERSON, GIRAFFE)]
    assert target["labels"].tolist() == labels
    assert target["iscrowd"].tolist() == [0, 0, 0, 1, 0]
    assert target["difficult"].tolist() == [0] * 5
    assert target["image_id"] == 139 and target["orig_size"] == target["image_size"] == (H, W)


def test_masks_agree_with_pycocotools_decoding(coco_root: Path) -> None:
    # pycocotools' own reading of the file (annToMask) is the independent reference
    dataset = COCOInstances(coco_root, "val")
    masks = dataset[0][1]["masks"]
    for k, annotation in enumerate(dataset.coco.imgToAnns[139]):
        reference = dataset.coco.annToMask(annotation).astype(bool)
        assert torch.equal(masks[k], torch.from_numpy(reference)), annotation["id"]
    rle = mask_utils.encode(np.asfortranarray(B.astype(np.uint8)))
    assert torch.equal(masks[1], torch.from_numpy(mask_utils.decode(rle).astype(bool)))


def test_boxes_are_the_boxes_of_the_masks_not_the_files_bbox(coco_root: Path) -> None:
    # the fixture writes bbox [0, 0, 1, 1] for every annotation: the view must not read it
    target = COCOInstances(coco_root, "val")[0][1]
    # hand-worked: a box mask of rows t..b-1, columns l..r-1 has the box (l, t, r, b); the blob
    # B covers columns 0 (the stray pixel) to 16 and rows 0 to 9
    rows, cols = np.nonzero(B)
    assert (cols.min(), cols.max() + 1, rows.min(), rows.max() + 1) == (0, 17, 0, 10)
    assert target["boxes"].tolist() == [
        [2, 2, 10, 8],
        [0, 0, 17, 10],
        [10, 8, 16, 13],
        [0, 12, 5, 15],
        [14, 12, 20, 15],
    ]
    assert target["boxes"].dtype == torch.float32


def test_crowd_object_voc_categories_and_empty_images(coco_root: Path) -> None:
    objects = COCOInstances(coco_root, "val", crowd="object")[0][1]
    assert objects["iscrowd"].tolist() == [0] * 5
    voc = COCOInstances(coco_root, "val", categories="voc")
    assert voc.classes == VOC_CLASSES[1:]
    target = voc[0][1]  # the giraffe is not a VOC class: left out
    assert target["labels"].tolist() == [VOC_INDEX[c] for c in (PERSON, PERSON, DOG, PERSON)]
    assert torch.equal(target["masks"], torch.from_numpy(np.stack([A, B, C, D])))
    _, empty = voc[1]
    assert empty["masks"].shape == (0, H, W) and empty["masks"].dtype == torch.bool
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,)
    assert empty["image_id"] == 285
    assert COCOInstances(coco_root, "val", drop_empty=True).image_ids == [139, 632]
    assert COCOInstances(coco_root, "val", categories="voc", drop_empty=True).image_ids == [139]
    small = COCOInstances(coco_root, "val")[2][1]
    assert small["masks"].shape == (1, 8, 6)
    assert torch.equal(small["masks"][0], torch.from_numpy(box(1, 1, 4, 4, (8, 6))))


def test_a_mask_without_pixels_is_left_out(coco_root: Path) -> None:
    # a sliver polygon between pixel centres covers no pixel: no mask, no box, no instance
    sliver = [[3.1, 3.1, 3.4, 3.1, 3.4, 3.4]]
    assert not mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(sliver, 8, 6))).any()
    rewrite_annotations(
        coco_root,
        lambda doc: doc["annotations"].append(
            {"id": 99, "image_id": 632, "category_id": DOG, "segmentation": sliver, "iscrowd": 0}
        ),
    )
    target = COCOInstances(coco_root, "val")[2][1]
    assert target["labels"].tolist() == [COCO_INDEX[GIRAFFE]] and len(target["masks"]) == 1


def test_registry_and_transforms(coco_root: Path) -> None:
    dataset = build_dataset(
        "coco", coco_root, "val", task="instance", transforms=train_transforms(12, mean=None)
    )
    assert isinstance(dataset, COCOInstances)
    torch.manual_seed(0)
    images, targets = collate_targets([dataset[i] for i in range(3)])
    assert images.shape == (3, 3, 12, 12)
    for target in targets:
        masks = target["masks"]
        assert masks.shape[1:] == (12, 12) and target["image_size"] == (12, 12)
        assert masks.flatten(1).any(1).all(), "instances whose mask was cut away are dropped"
        for mask, found in zip(masks, target["boxes"], strict=True):
            rows, cols = torch.nonzero(mask, as_tuple=True)
            expected = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            assert found.tolist() == [float(v) for v in expected]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        # COCO has no category 12, so its file does not declare it
        (
            {"category_id": 12},
            r"annotation 1 of image 139 \('000000000139\.jpg'\): category id 12 is not among",
        ),
        (
            {"segmentation": [[2, 3, 5, 3]]},
            r"annotation 1 of image 139 \('000000000139\.jpg'\): its polygon 1 has 2 points; "
            "a polygon needs at least 3",
        ),
        (
            {"segmentation": uncompressed_rle(box(0, 0, 2, 2, (H, W + 1)))},
            r"annotation 1 of image 139 .*: its RLE size \[16, 21\] is not its image's size "
            r"\[16, 20\]",
        ),
        (
            {"segmentation": compressed_rle(box(0, 0, 2, 2, (H + 2, W)))},
            r"annotation 1 of image 139 .*: its RLE size \[18, 20\] is not its image's size",
        ),
        (
            {"segmentation": {"counts": [5, 3], "size": [H, W]}},
            r"annotation 1 .*: its uncompressed RLE counts cover 8 pixels, not the 16x20 = 320",
        ),
        (
            {"segmentation": []},
            r"annotation 1 .*: its segmentation is an empty list \(a box-only annotation\?\)",
        ),
    ],
)
def test_bad_annotations_name_the_file_and_the_annotation(
    coco_root: Path, bad: dict, message: str
) -> None:
    rewrite_annotations(coco_root, lambda doc: doc["annotations"][0].update(bad))
    dataset = COCOInstances(coco_root, "val")
    with pytest.raises(DataFormatError, match=message) as info:
        dataset[0]
    assert info.value.file.endswith("instances_val2017.json")
    # a check lists the same problem, once, for that image only
    problems = dataset.check()
    assert len(problems) == 1 and Path(problems[0].file).name == "instances_val2017.json"
    assert re.search(message, problems[0].reason)


def test_an_image_of_another_size_names_the_mask_of_the_first_annotation(coco_root: Path) -> None:
    write_image(coco_root / "val2017" / "000000000139.jpg", random_rgb(H + 1, W))
    with pytest.raises(DataFormatError) as info:
        COCOInstances(coco_root, "val")[0]
    assert info.value.file.endswith("instances_val2017.json")
    assert info.value.reason.startswith(
        f"mask of annotation 1 of image 139 ('000000000139.jpg') is {H}x{W} but its image '"
    )
    assert f"000000000139.jpg' is {H + 1}x{W} (height x width)" in info.value.reason
    # an image without annotations is named by its mask's size all the same
    write_image(coco_root / "val2017" / "000000000285.jpg", random_rgb(H, W + 3))
    with pytest.raises(DataFormatError, match=rf"mask is {H}x{W} but its image '.*285\.jpg' is"):
        COCOInstances(coco_root, "val")[1]


def test_skip_invalid_counts_each_bad_image(
    coco_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def break_two(document: dict) -> None:
        document["annotations"][2]["segmentation"] = [[1, 1]]  # image 139's dog
        document["annotations"][5]["category_id"] = 12  # image 632's giraffe

    rewrite_annotations(coco_root, break_two)
    dataset = COCOInstances(coco_root, "val", skip_invalid=True)
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        assert dataset[0][1]["image_id"] == 285
        assert dataset[2][1]["image_id"] == 285  # 632 is bad: the search wraps past 139
    assert dataset.skipped == 2 and len(caplog.records) == 2
    reasons = [problem.reason for problem in dataset.check()]
    assert "annotation 3 of image 139 ('000000000139.jpg'): its polygon 1 has 1 point" in reasons[0]
    assert "annotation 6 of image 632 ('000000000632.jpg'): category id 12" in reasons[1]


def test_a_labelling_tools_export_with_its_own_categories_and_names(tmp_path: Path) -> None:
    # CVAT-like: categories numbered from 1 in the tool's order, images in sub-folders, every
    # brush mask an uncompressed RLE flagged iscrowd (crowd="object" reads them as objects)
    categories = [{"id": 1, "name": "scratch"}, {"id": 2, "name": "dent"}]
    images = [
        {"id": 7, "file_name": "line a/part 1.png", "height": 10, "width": 12},
        {"id": 3, "file_name": "line b/part 2.png", "height": 10, "width": 12},
    ]
    scratch, dent = box(1, 1, 3, 9, (10, 12)), box(4, 6, 9, 11, (10, 12))
    annotations = [
        {"id": 11, "image_id": 7, "category_id": 2, "segmentation": uncompressed_rle(dent),
         "iscrowd": 1, "bbox": [6, 4, 5, 5], "area": 25},
        {"id": 12, "image_id": 7, "category_id": 1, "segmentation": rectangle_polygon(1, 1, 3, 9),
         "iscrowd": 0, "bbox": [1, 1, 8, 2], "area": 16},
    ]  # fmt: skip
    annotation_file = tmp_path / "export" / "annotations" / "default.json"
    write_coco_export(
        annotation_file, tmp_path / "export" / "images", images, annotations, categories
    )
    options = {
        "annotations": "annotations/default.json",
        "images": "images",
        "categories": "file",
        "crowd": "object",
    }
    dataset = build_dataset("coco", tmp_path / "export", "train", task="instance", **options)
    assert dataset.classes == ("scratch", "dent") and dataset.image_ids == [3, 7]
    assert dataset.samples[1][0] == tmp_path / "export" / "images" / "line a" / "part 1.png"
    empty, target = dataset[0][1], dataset[1][1]
    assert empty["image_id"] == 3 and empty["masks"].shape == (0, 10, 12)
    assert target["image_id"] == 7 and target["labels"].tolist() == [1, 0]
    assert target["iscrowd"].tolist() == [0, 0]
    assert torch.equal(target["masks"], torch.from_numpy(np.stack([dent, scratch])))
    assert target["boxes"].tolist() == [[6, 4, 11, 9], [1, 1, 9, 3]]
    # categories by name, in the order given
    named = build_dataset(
        "coco", tmp_path / "export", "train", task="instance", **{**options, "categories": ["dent"]}
    )
    assert named.classes == ("dent",) and named[1][1]["labels"].tolist() == [0]
