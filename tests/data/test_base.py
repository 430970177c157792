from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import random_rgb, truncate, write_image, write_palette_png

from fcnlab.data.base import SegmentationDataset, check_split, find_files
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import voc_palette


def make_dataset(tmp_path: Path, skip_invalid: bool = False, transforms=None):
    """Three 6x8 samples whose masks are filled with 0, 1 and 2; returns it and the masks."""
    samples, masks = [], []
    for index in range(3):
        mask = np.full((6, 8), index, dtype=np.uint8)
        mask[0, 0] = 255
        image = write_image(tmp_path / f"{index}.png", random_rgb(6, 8, seed=index))
        samples.append((image, write_palette_png(tmp_path / f"{index}_mask.png", mask)))
        masks.append(torch.from_numpy(mask.astype(np.int64)))
    dataset = SegmentationDataset(
        samples, ["a", "b", "c"], voc_palette(3), transforms, skip_invalid=skip_invalid
    )
    return dataset, masks


def test_items_are_float_image_and_int64_mask(tmp_path: Path) -> None:
    dataset, masks = make_dataset(tmp_path)
    assert len(dataset) == 3 and dataset.num_classes == 3 and dataset.ignore_index == 255
    assert dataset.palette.dtype == np.uint8 and dataset.palette.shape == (3, 3)
    image, mask = dataset[1]
    assert image.dtype == torch.float32 and image.shape == (3, 6, 8)
    assert image.min() >= 0 and image.max() <= 1
    assert mask.dtype == torch.int64 and torch.equal(mask, masks[1])
    assert torch.equal(dataset[-1][1], masks[2])
    with pytest.raises(IndexError, match="index 3 out of range for 3 samples"):
        dataset[3]


def test_transforms_get_image_and_mask_together(tmp_path: Path) -> None:
    calls = []

    def flip_both(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append((image.shape, mask.shape))
        return image.flip(-1), mask.flip(-1)

    dataset, _ = make_dataset(tmp_path, transforms=flip_both)
    image, mask = dataset[0]
    raw_image, raw_mask = dataset.load(0)
    assert calls == [((3, 6, 8), (6, 8))]
    assert torch.equal(image, raw_image.flip(-1)) and torch.equal(mask, raw_mask.flip(-1))
    assert mask[0, -1] == 255


def test_invalid_sample_raises_naming_the_file(tmp_path: Path) -> None:
    dataset, _ = make_dataset(tmp_path)
    truncate(dataset.samples[1][0])
    with pytest.raises(DataFormatError, match=r"1\.png: cannot read image"):
        dataset[1]


def test_skip_invalid_logs_counts_and_serves_the_next_sample(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset, masks = make_dataset(tmp_path, skip_invalid=True)
    write_palette_png(dataset.samples[1][1], np.full((6, 8), 9, np.uint8))
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        assert torch.equal(dataset[1][1], masks[2])
        assert torch.equal(dataset[1][1], masks[2])
    assert dataset.skipped == 1
    assert len(caplog.records) == 1
    assert "1_mask.png" in caplog.records[0].getMessage()
    assert "mask values 9 (48 pixels)" in caplog.records[0].getMessage()


def test_skip_invalid_wraps_around_and_fails_when_nothing_is_valid(tmp_path: Path) -> None:
    dataset, masks = make_dataset(tmp_path, skip_invalid=True)
    truncate(dataset.samples[2][0])
    assert torch.equal(dataset[2][1], masks[0])
    for image, _ in dataset.samples[:2]:
        truncate(image)
    with pytest.raises(DataFormatError, match="all 3 samples are invalid"):
        dataset[0]
    assert dataset.skipped == 3


def test_check_lists_every_problem(tmp_path: Path) -> None:
    dataset, _ = make_dataset(tmp_path)
    truncate(dataset.samples[0][0])
    write_image(dataset.samples[2][1], np.zeros((5, 8), np.uint8))
    seen = []

    def progress(indices):
        for index in indices:
            seen.append(index)
            yield index

    problems = dataset.check(progress)
    assert seen == [0, 1, 2]
    assert [Path(problem.file).name for problem in problems] == ["0.png", "2_mask.png"]
    assert problems[0].reason.startswith("cannot read image")
    assert problems[1].reason.startswith(f"mask is 5x8 but its image '{dataset.samples[2][0]}'")


def test_check_split_and_find_files(tmp_path: Path) -> None:
    class Tiny(SegmentationDataset):
        splits = ("train", "val")

    check_split(Tiny, "val")
    with pytest.raises(ValueError, match="Tiny has no split 'test'; expected one of train, val"):
        check_split(Tiny, "test")
    (tmp_path / "b.jpg").touch()
    (tmp_path / "a.jpg").touch()
    assert find_files(tmp_path, "*.jpg", "layout") == [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    with pytest.raises(DatasetNotFoundError, match=r"no files matching '\*\.png'.*\nLAYOUT"):
        find_files(tmp_path, "*.png", "LAYOUT")
