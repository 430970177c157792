"""Instance targets through the joint transforms and the collate function: the masks move with
the image in every geometric step, the boxes are those of the moved masks, an instance whose mask
is left empty leaves with all its fields, and batches hold any number of instances (none too)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fcnlab.data import collate_targets, make_instance_target
from fcnlab.data import transforms as T


def ring(height: int, width: int, centre: tuple[float, float], outer: float, inner: float):
    """A bool (H, W) ring: the pixels whose centres lie between radii ``inner`` and ``outer``."""
    y, x = np.mgrid[0:height, 0:width] + 0.5
    d2 = (x - centre[0]) ** 2 + (y - centre[1]) ** 2
    return torch.from_numpy((d2 <= outer**2) & (d2 >= inner**2))


def pixel_box(mask: torch.Tensor) -> list[float]:
    """The xyxy pixel-edge box around a mask's pixels, from the pixels' coordinates."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def two_pieces(mask: torch.Tensor) -> bool:
    """Whether the pixels of ``mask`` form exactly two 4-connected pieces (a flood fill)."""
    left = {tuple(p) for p in torch.nonzero(mask).tolist()}
    pieces = 0
    while left:
        pieces += 1
        todo = [left.pop()]
        while todo:
            r, c = todo.pop()
            for near in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if near in left:
                    left.remove(near)
                    todo.append(near)
    return pieces == 2


def instance_sample(seed: int, height: int = 40, width: int = 44) -> tuple[torch.Tensor, dict]:
    """An image and an instance target of rings and discs (label k is instance k)."""
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(5):
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        outer = rng.uniform(4, 12)
        masks.append(ring(height, width, centre, outer, rng.choice([0.0, outer / 2])))
    target = make_instance_target(torch.stack(masks), torch.arange(5), seed, torch.arange(5) % 2)
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))
    return image, target


def test_a_crop_that_cuts_a_ring_in_two_gives_the_box_of_what_is_left() -> None:
    # A ring (radii 4 and 6 around (10, 10), box columns and rows 4-15) and a band of rows 6-7
    # through its hole: what is left is two arcs, columns 5-7 | 12-14 in row 6 and 5-6 | 13-14 in
    # row 7 (row 7: dy = -2.5, the outer circle reaches |dx| <= 5.45, the inner one |dx| < 3.12,
    # so the pixel centres 5.5, 6.5, 13.5 and 14.5).
    masks = ring(20, 20, (10, 10), 6, 4)[None]
    target = make_instance_target(masks, [3], 0)
    assert target["boxes"].tolist() == [[4, 4, 16, 16]]
    _, cropped = T.crop(torch.rand(3, 20, 20), target, top=6, left=0, height=2, width=20)
    left = cropped["masks"][0]
    assert torch.equal(left, masks[0, 6:8]) and two_pieces(left)
    assert left[0].nonzero().flatten().tolist() == [5, 6, 7, 12, 13, 14]
    assert left[1].nonzero().flatten().tolist() == [5, 6, 13, 14]
    assert cropped["boxes"].tolist() == [[5, 0, 15, 2]] == [pixel_box(left)]
    # the ring's box clipped to the window would overhang what is left by a column each side
    clipped, _ = T.crop_boxes(target["boxes"], 6, 0, 2, 20)
    assert clipped.tolist() == [[4, 0, 16, 2]]
    assert cropped["labels"].tolist() == [3]


def test_a_sliver_is_kept_and_an_instance_cut_away_leaves_with_all_its_fields() -> None:
    # The mask decides: a disc of which one column stays in the window is kept (its box would
    # fail the boxes' 30%-visible rule), one the window misses is dropped.
    masks = torch.zeros(3, 12, 12, dtype=torch.bool)
    masks[0, 2:8, 5:11] = True  # columns 5-10: the window keeps column 5 only
    masks[1, 1:3, 1:3] = True  # inside
    masks[2, 9:11, 8:11] = True  # cut away
    target = make_instance_target(masks, [7, 8, 9], 4, [0, 1, 0])
    target["difficult"] = torch.tensor([1, 0, 0])
    _, out = T.crop(torch.rand(3, 12, 12), target, top=0, left=0, height=9, width=6)
    assert out["labels"].tolist() == [7, 8]
    assert out["iscrowd"].tolist() == [0, 1] and out["difficult"].tolist() == [1, 0]
    assert out["boxes"].tolist() == [[5, 2, 6, 8], [1, 1, 3, 3]]
    assert torch.equal(out["masks"], masks[:2, :9, :6])
    _, kept = T.crop_boxes(target["boxes"][:1], 0, 0, 9, 6)
    assert not kept.any(), "the boxes' own rule would have dropped the sliver"


def test_padding_a_window_past_the_image_pads_masks_with_false() -> None:
    image, target = instance_sample(3, 10, 12)
    padded_image, out = T.crop(image, target, top=0, left=0, height=16, width=20, fill=0.0)
    assert padded_image.shape == (3, 16, 20) and out["masks"].shape == (
        len(target["labels"]),
        16,
        20,
    )
    assert torch.equal(out["masks"][:, :10, :12], target["masks"])
    assert not out["masks"][:, 10:].any() and not out["masks"][:, :, 12:].any()
    assert torch.equal(out["boxes"], target["boxes"])


@pytest.mark.parametrize("size", [(20, 22), (80, 88), (13, 50)])
def test_resize_moves_masks_by_nearest_and_boxes_follow_the_masks(size: tuple[int, int]) -> None:
    image, target = instance_sample(1)
    _, out = T.resize(image, target, size)
    # PyTorch's nearest-exact resize of every mask is the reference
    expected = F.interpolate(target["masks"][None].float(), size, mode="nearest-exact")[0].bool()
    keep = expected.flatten(1).any(1)
    assert torch.equal(out["masks"], expected[keep])
    assert out["labels"].tolist() == torch.arange(len(keep))[keep].tolist()
    assert out["boxes"].tolist() == [pixel_box(mask) for mask in out["masks"]]


def test_flip_mirrors_masks_and_boxes() -> None:
    image, target = instance_sample(2)
    _, out = T.hflip(image, target)
    assert torch.equal(out["masks"], target["masks"].flip(-1))
    width = 44  # a box (x1, x2) mirrors to (W - x2, W - x1)
    mirrored = [[width - x2, y1, width - x1, y2] for x1, y1, x2, y2 in target["boxes"].tolist()]
    assert out["boxes"].tolist() == mirrored


@pytest.mark.parametrize("seed", range(8))
def test_the_training_pipeline_moves_each_mask_as_the_segmentation_pipeline_moves_a_mask(
    seed: int,
) -> None:
    # Reference: each instance mask alone, as a bare (H, W) mask, through the segmentation
    # pipeline's geometric steps with the same draws (scale-crop, flip).
    image, target = instance_sample(seed)
    pipeline = T.train_transforms(24, (0.5, 2.0), mean=None)
    _, out = pipeline(image, target, generator=torch.Generator().manual_seed(seed))
    reference = T.Compose([T.RandomScaleCrop(24, 0.5, 2.0), T.RandomHorizontalFlip(0.5)])
    expected = []
    for mask in target["masks"]:
        _, moved = reference(image, mask.long(), generator=torch.Generator().manual_seed(seed))
        expected.append(moved == 1)
    kept = [k for k, mask in enumerate(expected) if mask.any()]
    assert out["labels"].tolist() == kept
    assert torch.equal(out["masks"], torch.stack(expected)[kept])
    assert out["boxes"].tolist() == [pixel_box(mask) for mask in out["masks"]]
    assert out["iscrowd"].tolist() == [k % 2 for k in kept] and out["image_size"] == (24, 24)


def test_collate_batches_any_number_of_instances_and_images_without_objects() -> None:
    empty = make_instance_target(torch.zeros(0, 9, 7, dtype=torch.bool), [], 2)
    samples = [
        instance_sample(0, 10, 12),
        instance_sample(1, 8, 14),
        (torch.rand(3, 9, 7), empty),
    ]
    loader = DataLoader(samples, batch_size=3, collate_fn=collate_targets)
    images, targets = next(iter(loader))
    assert images.shape == (3, 3, 10, 14)
    assert [len(t["labels"]) for t in targets] == [len(s[1]["labels"]) for s in samples]
    for (image, target), out in zip(samples, targets, strict=True):
        height, width = image.shape[1:]
        assert out["masks"].shape == (len(target["labels"]), 10, 14)
        assert torch.equal(out["masks"][:, :height, :width], target["masks"])
        assert not out["masks"][:, height:].any() and not out["masks"][:, :, width:].any()
        assert torch.equal(out["boxes"], target["boxes"])
        assert out["image_size"] == (height, width)
    assert targets[2]["masks"].shape == (0, 10, 14) and targets[2]["boxes"].shape == (0, 4)
    assert targets[2]["image_id"] == 2


def test_make_instance_target_derives_boxes_and_leaves_empty_masks_out() -> None:
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:5] = True
    masks[2, 5, 7] = True
    target = make_instance_target(masks, [4, 5, 6], 11, [1, 0, 0])
    assert target["labels"].tolist() == [4, 6] and target["iscrowd"].tolist() == [1, 0]
    assert target["boxes"].tolist() == [[2, 1, 5, 3], [7, 5, 8, 6]]
    assert target["boxes"].dtype == torch.float32 and target["difficult"].tolist() == [0, 0]
    assert torch.equal(target["masks"], masks[[0, 2]])
    assert target["orig_size"] == target["image_size"] == (6, 8) and target["image_id"] == 11
    with pytest.raises(ValueError, match=r"instance masks must be \(K, H, W\), got shape \(6, 8\)"):
        make_instance_target(masks[0], [4], 0)
