from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fcnlab.data import (
    SHAPE_KINDS,
    Shapes,
    build_dataset,
    detection_collate,
    dominant_class,
    list_datasets,
)
from fcnlab.data import transforms as T
from fcnlab.data.shapes import shape_mask


@pytest.mark.parametrize(
    ("kind", "area"),
    [
        ("disk", math.pi * 20**2),
        ("ring", math.pi * (20**2 - 10**2)),
        ("square", (2 * 0.85 * 20) ** 2),
        # equilateral triangle with circumradius R = 1.15 r: area 3 sqrt(3) / 4 R^2
        ("triangle", 3 * math.sqrt(3) / 4 * (1.15 * 20) ** 2),
        ("bar", (2 * 20) * (2 * 0.5 * 20)),
        # two 40 x 20 bars crossing in a 20 x 20 square
        ("cross", 2 * (40 * 20) - 20 * 20),
    ],
)
def test_shape_mask_area_matches_geometry(kind: str, area: float) -> None:
    mask = shape_mask(kind, 100, 100, center=(50.0, 50.0), radius=20.0, angle=0.3, aspect=0.5)
    assert mask.dtype == bool
    assert mask.sum() == pytest.approx(area, rel=0.03)


def test_shape_mask_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="hexagon"):
        shape_mask("hexagon", 8, 8, (4.0, 4.0), 2.0)


def test_samples_are_deterministic_for_seed_and_index() -> None:
    ds = Shapes(6, size=48, seed=3)
    image, mask = ds[4]
    for index in (0, 5, 2):
        ds[index]
    again = Shapes(6, size=48, seed=3)[4]
    assert torch.equal(image, again[0]) and torch.equal(mask, again[1])
    other_seed = Shapes(6, size=48, seed=4)[4]
    other_split = Shapes(6, size=48, seed=3, split="val")[4]
    assert not torch.equal(image, other_seed[0])
    assert not torch.equal(image, other_split[0])


def test_sample_types_ranges_and_classes() -> None:
    ds = Shapes(24, size=(40, 56), num_classes=4)
    assert ds.classes == ("background", *SHAPE_KINDS[:3])
    assert ds.palette.shape == (4, 3) and ds.palette.dtype == np.uint8
    assert ds.ignore_index == 255 and len(ds) == 24
    seen = set()
    for image, mask in ds:
        assert image.dtype == torch.float32 and image.shape == (3, 40, 56)
        assert image.min() >= 0 and image.max() <= 1
        assert mask.dtype == torch.int64 and mask.shape == (40, 56)
        values = set(mask.unique().tolist())
        assert values <= {0, 1, 2, 3}
        assert values - {0}, "every image holds at least one shape"
        seen |= values
    assert seen == {0, 1, 2, 3}


def test_colours_do_not_tell_the_class() -> None:
    # A nearest-centroid classifier on each instance's mean colour should be near chance (1/5).
    ds = Shapes(60, size=48)
    colours, labels = [], []
    for index in range(len(ds)):
        image, _ = ds.load(index)
        found = ds.instances(index)
        for label, inside in zip(found["labels"], found["masks"], strict=True):
            colours.append(image[:, inside].mean(dim=1))
            labels.append(int(label))
    x, y = torch.stack(colours), torch.tensor(labels)
    centroids = torch.stack([x[y == c].mean(0) for c in range(1, 6)])
    predicted = torch.cdist(x, centroids).argmin(1) + 1
    accuracy = (predicted == y).float().mean().item()
    assert len(y) > 100
    assert accuracy < 0.4


def test_texture_zero_gives_flat_colours() -> None:
    # without texture or noise, the background and each visible shape are one colour each
    ds = Shapes(6, size=40, texture=0.0, noise=0.0)
    for index in range(len(ds)):
        image, _ = ds.load(index)
        found = ds.instances(index)
        background = ~found["masks"].any(0)
        regions = [background, *found["masks"]]
        for region in regions:
            if region.any():
                colours = image[:, region]
                assert torch.allclose(colours, colours[:, :1].expand_as(colours))


def test_instances_agree_with_the_mask() -> None:
    ds = Shapes(8, size=48, seed=1)
    for index in range(len(ds)):
        _, mask = ds[index]
        found = ds.instances(index)
        union = torch.zeros_like(mask, dtype=torch.bool)
        for box, label, inside in zip(found["boxes"], found["labels"], found["masks"], strict=True):
            assert torch.all(mask[inside] == label)
            ys, xs = torch.nonzero(inside, as_tuple=True)
            expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert box.tolist() == [float(v) for v in expected]
            assert not (union & inside).any(), "instances do not overlap once occluded"
            union |= inside
        assert torch.equal(union, mask > 0)


def test_dominant_class_hand_example() -> None:
    mask = torch.tensor([[0, 0, 2, 2], [1, 1, 1, 2], [255, 255, 255, 255], [255, 1, 1, 0]])
    assert dominant_class(mask) == 1
    assert dominant_class(torch.zeros(3, 3, dtype=torch.int64)) == 0


def test_dominant_target_is_largest_shape_class() -> None:
    masks = Shapes(5, size=32, seed=2)
    labels = Shapes(5, size=32, seed=2, target="dominant")
    for index in range(5):
        counts = torch.bincount(masks[index][1].flatten(), minlength=6)[1:]
        label = labels[index][1]
        assert label.dtype == torch.int64
        assert int(label) == int(counts.argmax()) + 1


def test_transforms_are_applied_jointly() -> None:
    def swap(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image.flip(-1), mask.flip(-1)

    plain, flipped = Shapes(2, size=32), Shapes(2, size=32, transforms=swap)
    assert torch.equal(flipped[1][0], plain[1][0].flip(-1))
    assert torch.equal(flipped[1][1], plain[1][1].flip(-1))


def test_registry_builds_shapes_and_rejects_root() -> None:
    ds = build_dataset("shapes", split="val", num_images=3, size=32, seed=5)
    assert isinstance(ds, Shapes) and ds.split == "val" and len(ds) == 3
    assert torch.equal(ds[0][1], Shapes(3, size=32, seed=5, split="val")[0][1])
    with pytest.raises(ValueError, match="takes no root"):
        build_dataset("shapes", root="/data")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_classes": 9}, "num_classes=9"),
        ({"split": "holdout"}, "holdout"),
        ({"target": "points"}, "points"),
        ({"scale": (0.3, 0.1)}, "scale"),
    ],
)
def test_bad_options_are_named(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Shapes(4, **options)


def test_index_out_of_range() -> None:
    with pytest.raises(IndexError, match="7"):
        Shapes(3, size=16)[7]


def test_cache_renders_each_sample_once_and_returns_the_same_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = Shapes(3, size=32, seed=5)
    cached = Shapes(3, size=32, seed=5, cache=True)
    calls: list[int] = []
    render = cached.render
    monkeypatch.setattr(cached, "render", lambda i: calls.append(i) or render(i))
    for _ in range(2):
        for i in range(3):
            image, mask = cached[i]
            expected_image, expected_mask = plain[i]
            assert torch.equal(image, expected_image) and torch.equal(mask, expected_mask)
            image.zero_()  # a caller's in-place change must not reach the cache
    assert calls == [0, 1, 2]


# The detection view: boxes of the visible shapes.


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
    # Reference: each instance mask, as a bare mask, through the same steps with the same draws.
    dataset = Shapes(4, size=64, seed=4, target="boxes")
    pipeline = T.train_transforms(48, (0.5, 1.5), mean=None)
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
