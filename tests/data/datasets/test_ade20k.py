from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import write_ade20k, write_image

from fcnlab.data.datasets import ADE20K
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import ADE20K_CLASSES
from fcnlab.data.registry import build_dataset


def test_reduce_zero_label(tmp_path: Path) -> None:
    stored = np.array([[0, 1, 2], [75, 149, 150]], dtype=np.uint8)
    expected = torch.tensor([[255, 0, 1], [74, 148, 149]])
    root = write_ade20k(tmp_path, "validation", {"ADE_val_00000001": stored})
    dataset = build_dataset("ade20k", root=root, split="val")
    assert isinstance(dataset, ADE20K) and dataset.classes == ADE20K_CLASSES
    image, mask = dataset[0]
    assert image.shape == (3, 2, 3)
    assert torch.equal(mask, expected)


def test_value_above_150_is_an_error_and_split_folders_are_checked(tmp_path: Path) -> None:
    root = write_ade20k(tmp_path, "training", {"ADE_train_00000001": np.ones((2, 2), np.uint8)})
    dataset = ADE20K(root, "train")
    write_image(dataset.samples[0][1], np.full((2, 2), 151, dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"ADE_train_00000001\.png: mask values 151"):
        dataset[0]
    with pytest.raises(DatasetNotFoundError, match=r"(?s)images/validation'.*annotations/"):
        ADE20K(root, "val")
    with pytest.raises(ValueError, match="no split 'training'; expected one of train, val"):
        ADE20K(root, "training")
