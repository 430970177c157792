from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from fcnlab.data import (
    SHAPE_KINDS,
    Shapes,
    build_dataset,
    detection_collate,
    detection_train_transforms,
    list_datasets,
)
from fcnlab.data import transforms as T


def test_boxes_are_the_instances_with_zero_based_labels() -> None:
    boxes = Shapes(6, size=48, seed=2, target="boxes")
    masks = Shapes(6, size=48, seed=2, target="boxes")
    assert boxes.classes == SHAPE_KINDS and boxes.num_classes == 6 and boxes.task == "detection"
    for index in range(6):
        image, target = boxes[index]
        found = masks.instances(index)
        assert image.shape == (3, 48, 48) and image.dtype == torch.float32
        assert torch.equal(target["boxes"], found["boxes"])
        assert torch.equal(target["labels"], found["labels"] - 1)
        assert target["labels"].min() >= 0 and target["labels"].max() < 6
        assert (
            target["iscrowd"].tolist() == target["difficult"].tolist() == [0] * len(found["labels"])
        )
        assert target["image_id"] == index
        assert target["orig_size"] == target["image_size"] == (48, 48)
        for box, inside in zip(target["boxes"], found["masks"], strict=True):
            ys, xs = torch.nonzero(inside, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_num_classes_counts_kinds_with_boxes_and_background_with_masks() -> None:
    assert Shapes(2, size=16, num_classes=3, target="boxes").classes == SHAPE_KINDS[:3]
    assert Shapes(2, size=16, num_classes=3).classes == ("background", *SHAPE_KINDS[:2])
    # palette[c] is class c's colour in both: the kinds keep their mask colours
    boxes, masks = Shapes(2, num_classes=3, target="boxes"), Shapes(2, num_classes=4)
    assert (boxes.palette == masks.palette[1:]).all() and boxes.palette.shape == (3, 3)
    assert Shapes(2, size=16, target="mask").task == "segmentation"
    with pytest.raises(ValueError, match=r"num_classes=7 with target='boxes': expected 1\.\.6"):
        Shapes(2, num_classes=7, target="boxes")
    with pytest.raises(ValueError, match=r"num_classes=1 with target='mask': expected 2\.\.7"):
        Shapes(2, num_classes=1)


def test_transformed_boxes_follow_the_transformed_shape_masks() -> None:
    # Reference: each instance mask through the segmentation transforms with the same draws.
    dataset = Shapes(4, size=64, seed=4, target="boxes")
    pipeline = detection_train_transforms(48, (0.5, 1.5), mean=None)
    reference = T.Compose([T.RandomScaleCrop(48, 0.5, 1.5), T.RandomHorizontalFlip(0.5)])
    compared = 0
    for index in range(len(dataset)):
        image, target = dataset.load_boxes(index)
        out_image, out = pipeline(image, target, generator=torch.Generator().manual_seed(index))
        for box, label in zip(out["boxes"], out["labels"], strict=True):
            inside = dataset.instances(index)["masks"][
                int((target["labels"] == label).nonzero()[0])
            ]
            if (target["labels"] == label).sum() > 1:
                continue  # two shapes of one kind: the label does not say which mask
            _, mask = reference(
                image, inside.long(), generator=torch.Generator().manual_seed(index)
            )
            ys, xs = torch.nonzero(mask == 1, as_tuple=True)
            expected = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            assert torch.allclose(box, expected, atol=1.0), (index, box, expected)
            compared += 1
        assert out_image.shape == (3, 48, 48) and out["image_size"] == (48, 48)
    assert compared >= 4


def test_registry_builds_shapes_for_detection_and_names_the_sets_with_boxes() -> None:
    dataset = build_dataset("shapes", split="val", task="detection", num_images=3, size=32)
    assert isinstance(dataset, Shapes) and dataset.target == "boxes" and dataset.split == "val"
    assert torch.equal(
        dataset[1][1]["boxes"], Shapes(3, 32, split="val", target="boxes").instances(1)["boxes"]
    )
    assert "shapes" in list_datasets("detection") and "cityscapes" not in list_datasets("detection")
    with pytest.raises(ValueError, match=r"'cityscapes' has no detection annotations; .* shapes"):
        build_dataset("cityscapes", "/data", task="detection")
    with pytest.raises(ValueError, match=r"task='keypoints': expected one of"):
        build_dataset("shapes", task="keypoints")
    with pytest.raises(ValueError, match="has target 'boxes', not 'mask'"):
        build_dataset("shapes", task="detection", target="mask")


def test_cached_boxes_match_and_loader_collates() -> None:
    plain = Shapes(4, size=32, seed=1, target="boxes")
    cached = Shapes(4, size=32, seed=1, target="boxes", cache=True)
    for _ in range(2):
        for index in range(4):
            image, target = cached[index]
            assert torch.equal(image, plain[index][0])
            assert torch.equal(target["boxes"], plain[index][1]["boxes"])
            image.zero_()
    loader = DataLoader(plain, batch_size=4, collate_fn=detection_collate)
    images, targets = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and [t["image_id"] for t in targets] == [0, 1, 2, 3]
