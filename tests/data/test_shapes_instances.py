"""The Shapes instance view: the visible pixels of each shape as its mask, and touching shapes of
one class (one region in the class map, two instances), without changing the data the other
views have always drawn."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fcnlab.data import SHAPE_KINDS, Shapes, build_dataset, collate_targets, list_datasets
from fcnlab.data import transforms as T
from fcnlab.data.shapes import INSTANCE_TOUCHING

# sha256 of every sample's instance map, labels and the state its generator ends in (which says
# how many random numbers the sample drew), computed with the code before Shapes had `touching`
# (commit ee72cb5): the segmentation, classification and detection demos' data. Integer data
# only, so that no platform's last-bit rounding of the image can change it.
DEFAULT_DATA = {
    "default": (
        {"num_images": 6},
        "8d8fae5a6b4c3c1dbbfe24f5a8336a341a75edf5df806935d4c97214f4e071cb",
    ),
    "demo.yaml": (
        {"num_images": 6, "size": 64, "shapes_per_image": (1, 2), "scale": (0.25, 0.4),
         "texture": 0.5},
        "8f13a26df126f05283f3e777d8be7e160a1b4abebcff0f7345dbf979ad96fe69",
    ),
    "centernet_shapes.yaml": (
        {"num_images": 6, "num_classes": 5, "size": 80, "shapes_per_image": (1, 2),
         "scale": (0.25, 0.4), "texture": 0.5, "target": "boxes"},
        "6c45b6167c2ae291a3eb130db12b493bbc0241b17be3ebe3a933aa133f31cffc",
    ),
    "fcos val": (
        {"num_images": 6, "size": 96, "shapes_per_image": (1, 3), "split": "val",
         "target": "boxes"},
        "db4e67883235bfe26ca0e59011f793429cfba6a867e98fa53174b046e8b4ea30",
    ),
}  # fmt: skip


def data_digest(dataset: Shapes) -> str:
    """sha256 of each sample's instance map, labels and its generator's final state."""
    digest = hashlib.sha256()
    for index in range(len(dataset)):
        rng = dataset.generator(index)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(dataset, "generator", lambda _, rng=rng: rng)
            _, instances, labels = dataset.render(index)
        digest.update(instances.astype(np.int64).tobytes())
        digest.update(np.asarray(labels, dtype=np.int64).tobytes())
        digest.update(repr(rng.bit_generator.state["state"]).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("name", list(DEFAULT_DATA))
def test_the_default_data_is_what_it_always_was(name: str) -> None:
    options, expected = DEFAULT_DATA[name]
    assert data_digest(Shapes(**options)) == expected
    # touching=0 is the default and draws no extra random number
    assert data_digest(Shapes(**options, touching=0.0)) == expected


def test_touching_changes_the_data_only_when_asked_and_images_stay_equal_at_zero() -> None:
    plain, zero = Shapes(4, size=48, seed=5), Shapes(4, size=48, seed=5, touching=0.0)
    touching = Shapes(4, size=48, seed=5, touching=1.0, shapes_per_image=(3, 3))
    for index in range(4):
        assert torch.equal(plain[index][0], zero[index][0])
        assert torch.equal(plain[index][1], zero[index][1])
    assert data_digest(touching) != data_digest(Shapes(4, size=48, seed=5, shapes_per_image=(3, 3)))


def test_instance_targets_are_the_visible_shapes() -> None:
    dataset = Shapes(6, size=48, seed=2, target="instances", touching=0.5)
    # the class map of the same six kinds (its num_classes counts the background)
    semantic = Shapes(6, size=48, seed=2, touching=0.5, num_classes=7)
    assert dataset.task == "instance" and dataset.classes == SHAPE_KINDS
    for index in range(6):
        image, target = dataset[index]
        _, instance_map, labels = dataset.render(index)
        visible = [k for k in range(len(labels)) if (instance_map == k).any()]
        expected = (
            np.stack([instance_map == k for k in visible]) if visible else np.zeros((0, 48, 48))
        )
        assert target["masks"].dtype == torch.bool
        assert torch.equal(target["masks"], torch.from_numpy(expected.astype(bool)))
        assert target["labels"].tolist() == [labels[k] - 1 for k in visible]
        for box, inside in zip(target["boxes"], target["masks"], strict=True):
            ys, xs = torch.nonzero(inside, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        assert target["iscrowd"].tolist() == [0] * len(visible)
        assert target["image_id"] == index and target["image_size"] == (48, 48)
        # the class map is the instances' labels painted in (+1: its class 0 is the background)
        painted = torch.zeros(48, 48, dtype=torch.int64)
        for inside, label in zip(target["masks"], target["labels"], strict=True):
            painted[inside] = label + 1
        assert torch.equal(painted, semantic[index][1])
        assert torch.equal(image, semantic[index][0])


def grown(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel up, down, left and right."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def touching_same_class_pair(target: dict) -> bool:
    """Whether two instances of one class share an edge (one region of the class map)."""
    masks, labels = target["masks"].numpy(), target["labels"].tolist()
    return any(
        labels[a] == labels[b] and (grown(masks[a]) & masks[b]).any()
        for a in range(len(labels))
        for b in range(a + 1, len(labels))
    )


def test_the_instance_view_makes_touching_shapes_of_one_class_common() -> None:
    dataset = build_dataset("shapes", task="instance", num_images=40, size=64)
    assert dataset.target == "instances" and dataset.touching == INSTANCE_TOUCHING > 0
    assert "shapes" in list_datasets("instance")
    pairs = sum(touching_same_class_pair(dataset[index][1]) for index in range(len(dataset)))
    # measured: half of these 40 images (20); without touching, 5 of them
    assert pairs >= 12, pairs
    apart = Shapes(40, size=64, target="instances")
    assert sum(touching_same_class_pair(apart[i][1]) for i in range(40)) < pairs / 2


def test_a_touching_pair_is_one_region_of_the_class_map_and_two_instances() -> None:
    dataset = Shapes(20, size=64, target="instances", touching=1.0, shapes_per_image=(2, 2))
    semantic = Shapes(20, size=64, touching=1.0, shapes_per_image=(2, 2), num_classes=7)
    found = 0
    for index in range(len(dataset)):
        _, target = dataset[index]
        if len(target["labels"]) != 2 or not touching_same_class_pair(target):
            continue
        first, second = target["masks"].numpy()
        region = semantic[index][1].numpy() == int(target["labels"][0]) + 1
        # the class map holds one region where the instances hold two masks
        assert (region == (first | second)).all() and not (first & second).any()
        found += 1
    assert found >= 10, found


def test_transforms_move_the_masks_and_the_loader_collates() -> None:
    dataset = build_dataset(
        "shapes",
        task="instance",
        num_images=4,
        size=64,
        transforms=T.train_transforms(40, (0.5, 1.5), mean=None),
    )
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate_targets)
    images, targets = next(iter(loader))
    assert images.shape == (4, 3, 40, 40)
    for target in targets:
        assert target["masks"].shape[1:] == (40, 40) and target["image_size"] == (40, 40)
        for box, inside in zip(target["boxes"], target["masks"], strict=True):
            ys, xs = torch.nonzero(inside, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"touching=1\.5: expected a probability in \[0, 1\]"):
        Shapes(2, touching=1.5)
    with pytest.raises(ValueError, match="has target 'instances', not 'boxes'"):
        build_dataset("shapes", task="instance", target="boxes")
    with pytest.raises(ValueError, match=r"num_classes=7 with target='instances': expected 1\.\.6"):
        Shapes(2, num_classes=7, target="instances")


def test_cached_instances_match() -> None:
    plain = Shapes(3, size=32, seed=1, target="instances", touching=0.5)
    cached = Shapes(3, size=32, seed=1, target="instances", touching=0.5, cache=True)
    for _ in range(2):
        for index in range(3):
            _, target = cached[index]
            assert torch.equal(target["masks"], plain[index][1]["masks"])
            target["masks"].zero_()
