from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import random_rgb, write_image, write_palette_png

from fcnlab.data.datasets import ImageMaskFolder
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import voc_palette
from fcnlab.data.registry import build_dataset

MASKS = {
    "a": np.array([[0, 1, 1, 2], [2, 2, 0, 255], [0, 0, 0, 0]], dtype=np.uint8),
    "b": np.array([[1, 1, 1, 1], [0, 0, 0, 0], [255, 255, 0, 0]], dtype=np.uint8),
}


def write_folder(root: Path, colour: bool = False) -> Path:
    """``images/{stem}.jpg`` with ``masks/{stem}.png``: grayscale index masks, or colour masks
    painted with VOC's palette."""
    for index, (stem, mask) in enumerate(MASKS.items()):
        write_image(root / "images" / f"{stem}.jpg", random_rgb(3, 4, seed=index))
        write_image(root / "masks" / f"{stem}.png", voc_palette()[mask] if colour else mask)
    return root


def expected(stem: str) -> torch.Tensor:
    return torch.from_numpy(MASKS[stem].astype(np.int64))


def test_index_masks_paired_by_stem(tmp_path: Path) -> None:
    root = write_folder(tmp_path)
    dataset = ImageMaskFolder(root / "images", root / "masks", classes=["bg", "cat", "dog"])
    assert [image.stem for image, _ in dataset.samples] == ["a", "b"]
    assert dataset.classes == ("bg", "cat", "dog") and dataset.palette.shape == (3, 3)
    for index, stem in enumerate(["a", "b"]):
        image, mask = dataset[index]
        assert image.shape == (3, 3, 4) and torch.equal(mask, expected(stem))


def test_colour_masks_through_a_palette(tmp_path: Path) -> None:
    root = write_folder(tmp_path, colour=True)
    dataset = ImageMaskFolder(root / "images", root / "masks", ["bg", "cat", "dog"], voc_palette())
    assert torch.equal(dataset[0][1], expected("a")) and torch.equal(dataset[1][1], expected("b"))
    np.testing.assert_array_equal(dataset.palette, voc_palette(3))
    with pytest.raises(DataFormatError, match=r"a\.png: mask values 2 \(3 pixels\)"):
        ImageMaskFolder(root / "images", root / "masks", ["bg", "cat"], voc_palette())[0]
    with pytest.raises(DataFormatError, match=r"a\.png: .*colour \(RGB\).*pass a palette"):
        ImageMaskFolder(root / "images", root / "masks", ["bg", "cat", "dog"])[0]


def test_palette_index_masks_are_read_as_indices(tmp_path: Path) -> None:
    root = write_folder(tmp_path)
    write_palette_png(root / "masks" / "a.png", MASKS["a"])
    dataset = ImageMaskFolder(root / "images", root / "masks", ["bg", "cat", "dog"], voc_palette())
    assert torch.equal(dataset[0][1], expected("a"))


def test_classes_are_counted_from_masks_or_palette(tmp_path: Path) -> None:
    root = write_folder(tmp_path)
    dataset = ImageMaskFolder(root / "images", root / "masks")
    assert dataset.classes == ("class_0", "class_1", "class_2")
    palette = voc_palette(5)
    assert ImageMaskFolder(root / "images", root / "masks", palette=palette).num_classes == 5


def test_unpaired_files_are_errors_or_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_folder(tmp_path)
    write_image(root / "images" / "c.jpg", random_rgb(3, 4))
    with pytest.raises(DataFormatError, match=r"1 files have no mask: '.*c\.jpg'"):
        ImageMaskFolder(root / "images", root / "masks")
    with caplog.at_level(logging.WARNING, logger="fcnlab.data"):
        dataset = ImageMaskFolder(root / "images", root / "masks", skip_invalid=True)
    assert len(dataset) == 2 and dataset.skipped == 1
    assert "c.jpg: has no mask with the same stem" in caplog.text
    write_image(root / "images" / "b.png", random_rgb(3, 4))
    with pytest.raises(DataFormatError, match=r"b\.png: has the same stem as '.*b\.jpg'"):
        ImageMaskFolder(root / "images", root / "masks")


def test_registry_uses_split_folders_when_present(tmp_path: Path) -> None:
    flat = write_folder(tmp_path / "flat")
    assert len(build_dataset("folder", root=flat, split="train")) == 2
    split_root = tmp_path / "split"
    write_folder(split_root / "tmp")
    (split_root / "images").mkdir()
    (split_root / "masks").mkdir()
    (split_root / "tmp" / "images").rename(split_root / "images" / "val")
    (split_root / "tmp" / "masks").rename(split_root / "masks" / "val")
    dataset = build_dataset("folder", root=split_root, split="val", classes=["bg", "cat", "dog"])
    assert dataset.samples[0][0] == split_root / "images" / "val" / "a.jpg"
    with pytest.raises(DatasetNotFoundError, match=r"(?s)'.*nowhere'.*images/\[\{split\}/\]"):
        build_dataset("folder", root=tmp_path / "nowhere")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"images folder '.*empty/images' holds no"):
        build_dataset("folder", root=tmp_path / "empty")
