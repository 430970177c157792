from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fcnlab.data import SHAPE_KINDS, Shapes, build_dataset, dominant_class
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
