from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from fcnlab.data import collate_targets, detection_collate, make_target


def test_collate_pads_bottom_right_and_fills_image_size() -> None:
    small, large = torch.rand(3, 4, 6), torch.rand(3, 7, 5)
    with_size = {**make_target([[0, 0, 2, 2]], [1], 0, (4, 6)), "image_size": (4, 6)}
    without = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    images, targets = detection_collate([(small, with_size), (large, without)])
    assert images.shape == (2, 3, 7, 6)
    assert torch.equal(images[0, :, :4, :6], small) and images[0, :, 4:].abs().sum() == 0
    assert torch.equal(images[1, :, :7, :5], large) and images[1, :, :, 5:].abs().sum() == 0
    assert targets[0]["image_size"] == (4, 6) and targets[1]["image_size"] == (7, 5)
    assert targets[0]["boxes"] is with_size["boxes"] and "image_size" not in without


def test_collate_in_a_dataloader_with_variable_box_counts() -> None:
    samples = [
        (torch.full((3, 5 + k, 4), float(k)), make_target([[0, 0, 1, 1]] * k, [0] * k, k, (5, 4)))
        for k in range(3)
    ]
    loader = DataLoader(samples, batch_size=3, collate_fn=detection_collate)
    images, targets = next(iter(loader))
    assert images.shape == (3, 3, 7, 4)
    assert [len(t["boxes"]) for t in targets] == [0, 1, 2]
    assert [t["image_id"] for t in targets] == [0, 1, 2]


def test_collate_rejects_mixed_channels_and_empty_batches() -> None:
    target = make_target([], [], 0, (2, 2))
    with pytest.raises(ValueError, match=r"one C; got \(3, 2, 2\), \(1, 2, 2\)"):
        detection_collate([(torch.rand(3, 2, 2), target), (torch.rand(1, 2, 2), target)])
    with pytest.raises(ValueError, match="empty batch"):
        detection_collate([])


def test_collate_pads_instance_masks_and_class_maps_with_their_image() -> None:
    # Instance masks are padded with False and a class map with ignore, like the image with
    # zeros: every mask stays on its image's pixels. An image without objects keeps K = 0.
    masks = torch.rand(2, 3, 4) > 0.5
    mask = torch.randint(0, 3, (3, 4))
    with_objects = {"masks": masks, "labels": torch.tensor([1, 2]), "mask": mask}
    without = {"masks": torch.zeros(0, 5, 2, dtype=torch.bool), "labels": torch.zeros(0)}
    images, targets = collate_targets(
        [(torch.rand(3, 3, 4), with_objects), (torch.rand(3, 5, 2), without)]
    )
    assert images.shape == (2, 3, 5, 4)
    padded = targets[0]["masks"]
    assert padded.shape == (2, 5, 4) and padded.dtype == torch.bool
    assert torch.equal(padded[:, :3, :], masks) and not padded[:, 3:].any()
    assert torch.equal(targets[0]["mask"][:3], mask) and (targets[0]["mask"][3:] == 255).all()
    assert targets[1]["masks"].shape == (0, 5, 4) and targets[1]["image_size"] == (5, 2)
    assert targets[0]["image_size"] == (3, 4) and with_objects["masks"] is masks
