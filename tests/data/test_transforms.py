from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from fcnlab.data import transforms as T

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
