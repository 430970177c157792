from __future__ import annotations

import pytest
import torch

from fcnlab.data import box_transforms as B
from fcnlab.data import transforms as T
from fcnlab.data.detection import make_target


def random_target(height: int, width: int, count: int, generator: torch.Generator) -> dict:
    """``count`` boxes with integer corners inside a ``height`` x ``width`` image, at least
    one pixel wide and high; label k is box k."""
    x = torch.randint(0, width, (count, 2), generator=generator).sort(dim=1).values
    y = torch.randint(0, height, (count, 2), generator=generator).sort(dim=1).values
    boxes = torch.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], dim=1)
    return make_target(boxes, torch.arange(count), 0, (height, width))


def box_mask(box: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The box drawn as a 0/1 mask: the pixels whose squares it covers."""
    x1, y1, x2, y2 = (int(v) for v in box)
    mask = torch.zeros(height, width, dtype=torch.int64)
    mask[y1:y2, x1:x2] = 1
    return mask


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    """The xyxy pixel-edge box around a mask's 1 pixels."""
    ys, xs = torch.nonzero(mask == 1, as_tuple=True)
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def segmentation_pipeline(crop: int, scale: tuple[float, float], flip: float) -> T.Compose:
    """The segmentation steps the detection training pipeline mirrors, without normalising."""
    return T.Compose([T.RandomScaleCrop(crop, *scale), T.RandomHorizontalFlip(flip)])


@pytest.mark.parametrize(
    ("size", "crop", "scale"),
    [((37, 53), 32, (0.5, 2.0)), ((48, 40), 48, (0.3, 1.0)), ((20, 31), 24, (1.0, 2.5))],
)
def test_boxes_follow_their_masks_through_scale_crop_and_flip(
    size: tuple[int, int], crop: int, scale: tuple[float, float]
) -> None:
    # Each box is drawn as a mask and sent through the segmentation transforms with the same
    # draws; the mask's bounding box afterwards is the reference for the transformed box.
    height, width = size
    checked = 0
    for seed in range(8):
        target = random_target(height, width, 6, torch.Generator().manual_seed(100 + seed))
        image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed))
        detection = B.detection_train_transforms(
            crop, scale, flip=0.5, mean=None, min_visible=0.0, min_size=1e-6
        )
        out_image, out = detection(image, target, generator=torch.Generator().manual_seed(seed))
        reference = segmentation_pipeline(crop, scale, 0.5)
        ref_image, _ = reference(image, torch.zeros(size, dtype=torch.int64),
                                 generator=torch.Generator().manual_seed(seed))  # fmt: skip
        assert torch.equal(out_image, ref_image)
        assert out["image_size"] == (crop, crop)
        kept = {int(label): box for label, box in zip(out["labels"], out["boxes"], strict=True)}
        for k, box in enumerate(target["boxes"]):
            _, mask = reference(
                image, box_mask(box, height, width), generator=torch.Generator().manual_seed(seed)
            )
            if not (mask == 1).any():
                # no pixel centre left inside: at most a sliver under a pixel may remain
                if k in kept:
                    assert (kept[k][2:] - kept[k][:2]).min() <= 1.0, (seed, k, kept[k])
                continue
            expected = mask_box(mask)
            if (expected[2:] - expected[:2]).min() >= 2:
                assert k in kept, "a box whose mask is still 2 px wide and high was dropped"
            if k in kept:
                assert torch.allclose(kept[k], expected, atol=1.0), (seed, k, kept[k], expected)
                checked += 1
    assert checked >= 20, "too few boxes survived to test anything"


@pytest.mark.parametrize("size", [(24, 36), 17])
def test_eval_resize_matches_the_mask_reference(size: int | tuple[int, int]) -> None:
    target = random_target(30, 20, 8, torch.Generator().manual_seed(3))
    image = torch.rand(3, 30, 20)
    out_image, out = B.detection_eval_transforms(size, mean=None)(image, target)
    expected_size = (size, size) if isinstance(size, int) else size
    assert out_image.shape == (3, *expected_size) and out["image_size"] == expected_size
    assert torch.equal(out_image, T.resize_image(image, expected_size))
    assert torch.equal(out["labels"], target["labels"])
    for box, new_box in zip(target["boxes"], out["boxes"], strict=True):
        mask = T.resize_mask(box_mask(box, 30, 20), expected_size)
        assert torch.allclose(new_box, mask_box(mask), atol=1.0)


def test_hand_worked_flip_resize_and_crop() -> None:
    boxes = torch.tensor([[1.0, 2.0, 4.0, 5.0]])
    assert B.flip_boxes(boxes, 10).tolist() == [[6.0, 2.0, 9.0, 5.0]]
    assert B.resize_boxes(boxes, (10, 20), (5, 40)).tolist() == [[2.0, 1.0, 8.0, 2.5]]
    window = torch.tensor(
        [
            [8.0, 0.0, 18.0, 10.0],  # 2 of 10 columns inside: 20 % of the area, dropped
            [5.0, 0.0, 15.0, 10.0],  # half inside, kept and clipped to x2 = 10
            [0.0, 0.0, 1.0, 1.0],  # tiny but not cut: kept
            [8.5, 0.0, 10.5, 3.0],  # 75 % inside but only 1.5 px wide: dropped
            [12.0, 3.0, 14.0, 5.0],  # outside: dropped
        ]
    )
    clipped, keep = B.crop_boxes(window, top=0, left=0, height=10, width=10)
    assert keep.tolist() == [False, True, True, False, False]
    assert clipped[1].tolist() == [5.0, 0.0, 10.0, 10.0]
    shifted, keep = B.crop_boxes(torch.tensor([[6.0, 7.0, 9.0, 9.0]]), 5, 4, 10, 10)
    assert shifted.tolist() == [[2.0, 2.0, 5.0, 4.0]] and keep.tolist() == [True]


def test_crop_drops_every_per_box_field_together() -> None:
    target = make_target(
        [[0, 0, 6, 6], [30, 30, 40, 40], [12, 14, 20, 22]],
        [0, 1, 2],
        image_id=7,
        orig_size=(40, 40),
        iscrowd=[0, 1, 0],
        difficult=[1, 0, 1],
    )
    crop = B.BoxRandomScaleCrop(16, 1.0, 1.0)
    counts = set()
    for seed in range(12):
        _, out = crop(torch.rand(3, 40, 40), target, generator=torch.Generator().manual_seed(seed))
        labels = out["labels"]
        counts.add(len(labels))
        assert len(out["boxes"]) == len(out["iscrowd"]) == len(out["difficult"]) == len(labels)
        assert torch.equal(out["iscrowd"], target["iscrowd"][labels])
        assert torch.equal(out["difficult"], target["difficult"][labels])
        assert out["image_id"] == 7 and out["orig_size"] == (40, 40)
    assert len(counts) > 1 and max(counts) < 3, "a 16 px window never holds all three boxes"


def test_flip_probability_and_no_change_to_the_input() -> None:
    target = make_target([[1, 2, 4, 5]], [0], 0, (6, 10))
    image = torch.rand(3, 6, 10)
    flipped_image, flipped = B.BoxRandomHorizontalFlip(1.0)(image, target)
    assert torch.equal(flipped_image, image.flip(-1))
    assert flipped["boxes"].tolist() == [[6.0, 2.0, 9.0, 5.0]]
    assert target["boxes"].tolist() == [[1.0, 2.0, 4.0, 5.0]]
    same_image, same = B.BoxRandomHorizontalFlip(0.0)(image, target)
    assert same_image is image and torch.equal(same["boxes"], target["boxes"])


def test_jitter_and_normalise_match_the_segmentation_pipeline() -> None:
    image = torch.rand(3, 40, 44)
    target = random_target(40, 44, 3, torch.Generator().manual_seed(1))
    detection = B.detection_train_transforms(32, jitter=0.4)
    segmentation = T.train_transforms(32, jitter=0.4)
    out_image, out = detection(image, target, generator=torch.Generator().manual_seed(9))
    ref_image, _ = segmentation(
        image, torch.zeros(40, 44, dtype=torch.int64), generator=torch.Generator().manual_seed(9)
    )
    assert torch.equal(out_image, ref_image)
    assert out["boxes"].dtype == torch.float32 and out["labels"].dtype == torch.int64


def test_bad_inputs_are_named() -> None:
    compose = B.detection_eval_transforms(mean=None)
    with pytest.raises(ValueError, match="float"):
        compose(torch.zeros(3, 4, 4, dtype=torch.uint8), make_target([], [], 0, (4, 4)))
    with pytest.raises(ValueError, match=r"target\['boxes'\] must be an \(M, 4\) tensor"):
        compose(torch.rand(3, 4, 4), {"boxes": torch.zeros(2, 5)})
