from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from fcnlab.data import transforms as T
from fcnlab.data.targets import make_target

FILL = -1.0


def coordinate_pair(height: int = 24, width: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose channels hold each pixel's row and column, and a mask encoding both."""
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    image = torch.stack([rows, cols, rows * 0]).float()
    return image, encode(rows, cols)


def encode(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    return (rows * 7 + cols * 3) % 200


def assert_aligned(image: torch.Tensor, mask: torch.Tensor) -> None:
    """Every pixel's mask value is the one its image coordinates encode; padding is ignore."""
    padded = image[0] == FILL
    assert torch.all(mask[padded] == 255)
    rows, cols = image[0][~padded].long(), image[1][~padded].long()
    assert torch.equal(mask[~padded], encode(rows, cols))


@pytest.mark.parametrize("seed", range(6))
def test_crop_and_flip_keep_image_and_mask_aligned(seed: int) -> None:
    image, mask = coordinate_pair()
    pipeline = T.Compose([T.RandomCrop((30, 20), fill=FILL), T.RandomHorizontalFlip(0.5)])
    out_image, out_mask = pipeline(image, mask, generator=torch.Generator().manual_seed(seed))
    assert out_image.shape == (3, 30, 20) and out_mask.shape == (30, 20)
    assert (out_image[0] == FILL).sum() == 6 * 20, "24 rows padded to 30 at the bottom"
    assert_aligned(out_image, out_mask)


@pytest.mark.parametrize(("size", "crop"), [((37, 53), 24), ((20, 31), 24), ((96, 128), 64)])
def test_fused_scale_crop_equals_scale_then_crop(size: tuple[int, int], crop: int) -> None:
    # F.interpolate on the whole image is the reference; the fused step only computes the window
    for seed in range(12):
        generator = torch.Generator().manual_seed(seed)
        image, mask = torch.rand(3, *size, generator=generator), torch.randint(0, 99, size)
        fused = T.RandomScaleCrop(crop, 0.5, 2.0, fill=FILL)
        reference = T.Compose([T.RandomScale(0.5, 2.0), T.RandomCrop(crop, fill=FILL)])
        out = fused(image, mask, generator=torch.Generator().manual_seed(seed))
        expected = reference(image, mask, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out[1], expected[1])
        assert torch.allclose(out[0], expected[0], atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_scaled_mask_stays_on_the_image_grid(seed: int) -> None:
    # Bilinear interpolation of a coordinate ramp returns each output pixel's source position;
    # the nearest-neighbour mask must name the source pixel within half a pixel of it.
    image, _ = coordinate_pair(24, 32)
    mask = image[0].long() * 100 + image[1].long()
    out_image, out_mask = T.RandomScaleCrop(20, 0.5, 2.0, fill=FILL)(
        image, mask, generator=torch.Generator().manual_seed(seed)
    )
    rows, cols = out_image[0], out_image[1]
    inside = (rows > 1) & (rows < 22) & (cols > 1) & (cols < 30)  # away from clamped borders
    assert inside.sum() > 50
    assert torch.all((out_mask[inside] // 100 - rows[inside]).abs() <= 0.5 + 1e-4)
    assert torch.all((out_mask[inside] % 100 - cols[inside]).abs() <= 0.5 + 1e-4)


def test_flip_is_a_mirror() -> None:
    image, mask = coordinate_pair(4, 5)
    out_image, out_mask = T.RandomHorizontalFlip(p=1.0)(image, mask)
    assert torch.equal(out_image[1, 0], torch.tensor([4.0, 3, 2, 1, 0]))
    assert torch.equal(out_mask, mask[:, [4, 3, 2, 1, 0]])


def test_mask_resize_is_nearest_neighbour() -> None:
    mask = torch.tensor([[0, 3], [7, 255]])
    image = mask[None].float().expand(3, 2, 2)
    up_image, up_mask = T.resize(image, mask, (4, 4))
    assert torch.equal(up_mask, mask.repeat_interleave(2, 0).repeat_interleave(2, 1))
    blocks = mask.repeat_interleave(2, 0).repeat_interleave(2, 1)
    down_image, down_mask = T.resize(torch.full((3, 4, 4), 0.25), blocks, (2, 2))
    assert torch.equal(down_mask, mask)
    assert torch.allclose(down_image, torch.full((3, 2, 2), 0.25))
    assert up_image.shape == (3, 4, 4)


@pytest.mark.parametrize("seed", range(4))
def test_random_pipeline_never_invents_labels(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    mask = torch.randint(0, 3, (37, 41), generator=generator) * 4  # values {0, 4, 8}
    image = torch.rand(3, 37, 41, generator=generator)
    pipeline = T.train_transforms(48, scale=(0.3, 2.5), jitter=0.4)
    out_image, out_mask = pipeline(image, mask, generator=generator)
    assert out_image.shape == (3, 48, 48) and out_mask.dtype == torch.int64
    assert set(out_mask.unique().tolist()) <= {0, 4, 8, 255}


def test_seeded_pipeline_is_reproducible() -> None:
    image, mask = coordinate_pair(40, 40)
    pipeline = T.train_transforms(24, jitter=0.3)
    torch.manual_seed(11)
    first = pipeline(image, mask)
    torch.manual_seed(11)
    second = pipeline(image, mask)
    third = pipeline(image, mask, generator=torch.Generator().manual_seed(11))
    fourth = pipeline(image, mask, generator=torch.Generator().manual_seed(11))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(third[0], fourth[0]) and torch.equal(third[1], fourth[1])
    draws = [pipeline(image, mask)[1] for _ in range(4)]
    assert any(not torch.equal(draws[0], other) for other in draws[1:])


class SameImage(Dataset):
    """Four copies of one coordinate image, transformed in the worker."""

    def __init__(self) -> None:
        self.pair = coordinate_pair(32, 32)
        self.transforms = T.Compose([T.RandomScale(0.5, 1.5), T.RandomCrop(16, fill=FILL)])

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transforms(*self.pair)


def test_dataloader_workers_are_reproducible_and_distinct() -> None:
    def epoch() -> list[torch.Tensor]:
        loader = DataLoader(
            SameImage(), batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(5)
        )
        return [mask[0] for _, mask in loader]

    first, second = epoch(), epoch()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # samples 0 and 1 come from different workers, which must not repeat each other's draws
    assert not torch.equal(first[0], first[1])


def test_colour_jitter_changes_the_image_only() -> None:
    image, mask = torch.rand(3, 8, 8), torch.randint(0, 5, (8, 8))
    out_image, out_mask = T.ColorJitter(0.5, 0.5, 0.5)(image, mask)
    assert torch.equal(out_mask, mask)
    assert not torch.equal(out_image, image)
    assert out_image.min() >= 0 and out_image.max() <= 1


def test_adjust_colour_hand_examples() -> None:
    image = torch.tensor([[[0.2, 0.8]], [[0.4, 0.4]], [[0.6, 0.0]]])
    assert torch.equal(T.adjust_colour(image), image)
    luma = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]  # [0.3631, 0.4740]
    assert torch.allclose(T.adjust_colour(image, saturation=0.0), luma.expand(3, 1, 2))
    flat = T.adjust_colour(image, contrast=0.0)
    assert torch.allclose(flat, torch.full((3, 1, 2), float(luma.mean())))
    assert torch.allclose(T.adjust_colour(image, brightness=2.0), (image * 2).clamp(max=1))


def test_normalize_uses_imagenet_statistics() -> None:
    mean = torch.tensor(T.IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(T.IMAGENET_STD).view(3, 1, 1)
    image = torch.cat([mean, mean + std], dim=2).expand(3, 2, 2)
    out, _ = T.Normalize()(image, torch.zeros(2, 2, dtype=torch.int64))
    assert torch.allclose(out[:, :, 0], torch.zeros(3, 2), atol=1e-6)
    assert torch.allclose(out[:, :, 1], torch.ones(3, 2), atol=1e-6)


def test_eval_transforms_resize_and_normalize() -> None:
    image, mask = coordinate_pair(20, 30)
    out_image, out_mask = T.eval_transforms(size=(10, 15), mean=None)(image, mask)
    assert out_image.shape == (3, 10, 15) and out_mask.shape == (10, 15)
    assert set(out_mask.unique().tolist()) <= set(mask.unique().tolist())


def test_mismatched_pair_is_named() -> None:
    with pytest.raises(ValueError, match=r"mask is \(5, 5\) but its image is \(4, 4\)"):
        T.Compose([])(torch.rand(3, 4, 4), torch.zeros(5, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="float"):
        T.Compose([])(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 4))


# Target dicts: boxes (and their per-box fields) move with the same draws as masks.


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
    """The geometric steps of the training pipeline, without normalising, for masks."""
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
        detection = T.train_transforms(
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
    out_image, out = T.eval_transforms(size, mean=None)(image, target)
    expected_size = (size, size) if isinstance(size, int) else size
    assert out_image.shape == (3, *expected_size) and out["image_size"] == expected_size
    assert torch.equal(out_image, T.resize_image(image, expected_size))
    assert torch.equal(out["labels"], target["labels"])
    for box, new_box in zip(target["boxes"], out["boxes"], strict=True):
        mask = T.resize_mask(box_mask(box, 30, 20), expected_size)
        assert torch.allclose(new_box, mask_box(mask), atol=1.0)


def test_hand_worked_flip_resize_and_crop() -> None:
    boxes = torch.tensor([[1.0, 2.0, 4.0, 5.0]])
    assert T.flip_boxes(boxes, 10).tolist() == [[6.0, 2.0, 9.0, 5.0]]
    assert T.resize_boxes(boxes, (10, 20), (5, 40)).tolist() == [[2.0, 1.0, 8.0, 2.5]]
    window = torch.tensor(
        [
            [8.0, 0.0, 18.0, 10.0],  # 2 of 10 columns inside: 20 % of the area, dropped
            [5.0, 0.0, 15.0, 10.0],  # half inside, kept and clipped to x2 = 10
            [0.0, 0.0, 1.0, 1.0],  # tiny but not cut: kept
            [8.5, 0.0, 10.5, 3.0],  # 75 % inside but only 1.5 px wide: dropped
            [12.0, 3.0, 14.0, 5.0],  # outside: dropped
        ]
    )
    clipped, keep = T.crop_boxes(window, top=0, left=0, height=10, width=10)
    assert keep.tolist() == [False, True, True, False, False]
    assert clipped[1].tolist() == [5.0, 0.0, 10.0, 10.0]
    shifted, keep = T.crop_boxes(torch.tensor([[6.0, 7.0, 9.0, 9.0]]), 5, 4, 10, 10)
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
    crop = T.RandomScaleCrop(16, 1.0, 1.0)
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
    flipped_image, flipped = T.RandomHorizontalFlip(1.0)(image, target)
    assert torch.equal(flipped_image, image.flip(-1))
    assert flipped["boxes"].tolist() == [[6.0, 2.0, 9.0, 5.0]]
    assert target["boxes"].tolist() == [[1.0, 2.0, 4.0, 5.0]]
    same_image, same = T.RandomHorizontalFlip(0.0)(image, target)
    assert same_image is image and torch.equal(same["boxes"], target["boxes"])


def test_jitter_and_normalise_match_the_segmentation_pipeline() -> None:
    image = torch.rand(3, 40, 44)
    target = random_target(40, 44, 3, torch.Generator().manual_seed(1))
    detection = T.train_transforms(32, jitter=0.4)
    segmentation = T.train_transforms(32, jitter=0.4)
    out_image, out = detection(image, target, generator=torch.Generator().manual_seed(9))
    ref_image, _ = segmentation(
        image, torch.zeros(40, 44, dtype=torch.int64), generator=torch.Generator().manual_seed(9)
    )
    assert torch.equal(out_image, ref_image)
    assert out["boxes"].dtype == torch.float32 and out["labels"].dtype == torch.int64


def test_bad_inputs_are_named() -> None:
    compose = T.eval_transforms(mean=None)
    with pytest.raises(ValueError, match="float"):
        compose(torch.zeros(3, 4, 4, dtype=torch.uint8), make_target([], [], 0, (4, 4)))
    with pytest.raises(ValueError, match=r"target\['boxes'\] must be an \(M, 4\) tensor"):
        compose(torch.rand(3, 4, 4), {"boxes": torch.zeros(2, 5)})


# Instance masks (K, H, W) move like masks, and an instance cut away leaves with all its fields.


def instance_target(height: int, width: int, count: int, seed: int) -> dict:
    """``count`` random boxes as a target with one filled instance mask per box (label k is
    instance k, iscrowd alternating)."""
    target = random_target(height, width, count, torch.Generator().manual_seed(seed))
    masks = torch.stack([box_mask(box, height, width).bool() for box in target["boxes"]])
    return {**target, "masks": masks, "iscrowd": torch.arange(count) % 2}


def test_instance_masks_follow_the_mask_pipeline_and_drop_with_their_boxes() -> None:
    # Reference: each instance mask alone, as a bare (H, W) mask, through the same steps with
    # the same draws; the target's masks must equal it, and its other fields must follow.
    scale = (0.5, 2.0)
    kept_counts, dropped = [], 0
    for seed in range(12):
        target = instance_target(40, 44, 5, seed)
        image = torch.rand(3, 40, 44, generator=torch.Generator().manual_seed(seed))
        pipeline = T.train_transforms(24, scale, mean=None)
        _, out = pipeline(image, target, generator=torch.Generator().manual_seed(seed))
        labels = out["labels"].tolist()
        count = len(labels)
        assert out["masks"].shape == (count, 24, 24) and out["masks"].dtype == torch.bool
        assert len(out["boxes"]) == len(out["iscrowd"]) == len(out["difficult"]) == count
        assert torch.equal(out["iscrowd"], target["iscrowd"][out["labels"]])
        reference = segmentation_pipeline(24, scale, 0.5)
        for k in range(5):
            _, expected = reference(
                image, target["masks"][k].long(), generator=torch.Generator().manual_seed(seed)
            )
            if k in labels:
                kept = labels.index(k)
                assert torch.equal(out["masks"][kept], expected == 1), (seed, k)
                assert torch.allclose(out["boxes"][kept], mask_box(expected), atol=1.0)
            else:
                dropped += 1
            if not (expected == 1).any():
                assert k not in labels, "an instance whose mask was cut away was kept"
        kept_counts.append(count)
    assert dropped > 0 and max(kept_counts) > 0, "the crops should keep some and drop some"


def test_hand_worked_crop_of_instance_masks_without_boxes() -> None:
    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True  # top left: inside the window
    masks[1, 7:9, 7:9] = True  # bottom right: cut away
    classes = torch.tensor([[0, 1], [2, 3]]).repeat_interleave(5, 0).repeat_interleave(5, 1)
    target = {"masks": masks, "labels": torch.tensor([4, 5]), "mask": classes}
    image = torch.rand(3, 10, 10)
    out_image, out = T.crop(image, target, top=0, left=0, height=6, width=6)
    assert out["labels"].tolist() == [4] and out["masks"].shape == (1, 6, 6)
    assert torch.equal(out["masks"][0], masks[0, :6, :6])
    assert torch.equal(out["mask"], T.crop(image, classes, 0, 0, 6, 6)[1])
    assert torch.equal(out_image, image[:, :6, :6]) and len(target["labels"]) == 2
    # a window reaching past the image pads instance masks with False, the class map with ignore
    _, padded = T.crop(image, target, top=8, left=0, height=4, width=10)
    assert padded["labels"].tolist() == [5] and not padded["masks"][:, 2:].any()
    assert (padded["mask"][2:] == 255).all()


def test_resize_and_flip_move_instance_masks_and_keep_empty_targets_empty() -> None:
    target = instance_target(12, 16, 3, seed=2)
    image = torch.rand(3, 12, 16)
    _, resized = T.resize(image, target, (6, 8))
    # PyTorch's nearest-exact resize of each instance is the reference
    expected = F.interpolate(target["masks"][None].float(), (6, 8), mode="nearest-exact")[0]
    assert resized["masks"].dtype == torch.bool
    assert torch.equal(resized["masks"], expected.bool())
    _, flipped = T.hflip(image, target)
    assert torch.equal(flipped["masks"], target["masks"].flip(-1))
    empty = {
        "masks": torch.zeros(0, 12, 16, dtype=torch.bool),
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
    }
    out_image, out = T.train_transforms(8, mean=None)(image, empty)
    assert out["masks"].shape == (0, 8, 8) and out["boxes"].shape == (0, 4)
    assert out_image.shape == (3, 8, 8) and out["image_size"] == (8, 8)


def test_bad_instance_masks_are_named() -> None:
    compose, image = T.eval_transforms(mean=None), torch.rand(3, 4, 4)
    boxes = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"target\['masks'\] must be a bool \(K, H, W\) tensor"):
        compose(image, {"masks": torch.zeros(2, 4, 4)})
    with pytest.raises(ValueError, match=r"with \(H, W\) = \(4, 4\), the image's size; got"):
        compose(image, {"masks": torch.zeros(2, 4, 5, dtype=torch.bool)})
    with pytest.raises(ValueError, match="holds 2 boxes but 1 masks"):
        compose(image, {"boxes": boxes, "masks": torch.zeros(1, 4, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"target\['mask'\] is \(3, 4\) but its image is \(4, 4\)"):
        compose(image, {"mask": torch.zeros(3, 4, dtype=torch.int64)})
    with pytest.raises(ValueError, match=r"holding any of 'mask', 'boxes', 'masks'; got \['box'\]"):
        compose(image, {"box": boxes})
