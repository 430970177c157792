from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import random_rgb, write_cityscapes, write_image

from fcnlab.data.datasets import Cityscapes
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import CITYSCAPES_CLASSES
from fcnlab.data.registry import build_dataset

# labelId -> trainId pairs read off the official table (cityscapesScripts helpers/labels.py).
HAND_PICKED = {
    0: 255,  # unlabeled
    1: 255,  # ego vehicle
    6: 255,  # ground
    7: 0,  # road
    8: 1,  # sidewalk
    9: 255,  # parking
    11: 2,  # building
    14: 255,  # guard rail
    17: 5,  # pole
    18: 255,  # polegroup
    23: 10,  # sky
    24: 11,  # person
    26: 13,  # car
    29: 255,  # caravan
    31: 16,  # train
    33: 18,  # bicycle
}


def label_ids() -> tuple[np.ndarray, np.ndarray]:
    """A 4x4 labelIds map holding every hand-picked id once, and its expected trainIds."""
    ids = np.array(list(HAND_PICKED), dtype=np.uint8).reshape(4, 4)
    expected = np.array(list(HAND_PICKED.values()), dtype=np.int64).reshape(4, 4)
    return ids, expected


def test_label_ids_map_to_the_19_train_ids(tmp_path: Path) -> None:
    ids, expected = label_ids()
    root = write_cityscapes(tmp_path, "val", "frankfurt", {"frankfurt_000000_000294": ids})
    dataset = Cityscapes(root, "val")
    assert dataset.classes == CITYSCAPES_CLASSES and dataset.num_classes == 19
    image, mask = dataset[0]
    assert image.shape == (3, 4, 4)
    assert torch.equal(mask, torch.from_numpy(expected))


def test_label_train_ids_file_is_preferred(tmp_path: Path) -> None:
    ids, _ = label_ids()
    train_ids = np.array([[0, 18, 255, 5]] * 4, dtype=np.uint8)
    stems = {"aachen_000000_000019": ids, "aachen_000001_000019": ids}
    root = write_cityscapes(
        tmp_path, "train", "aachen", stems, train_ids={"aachen_000001_000019": train_ids}
    )
    dataset = build_dataset("cityscapes", root=root, split="train")
    assert [mask.name for _, mask in dataset.samples] == [
        "aachen_000000_000019_gtFine_labelIds.png",
        "aachen_000001_000019_gtFine_labelTrainIds.png",
    ]
    assert torch.equal(dataset[1][1], torch.from_numpy(train_ids.astype(np.int64)))
    write_image(dataset.samples[1][1], np.full((4, 4), 19, dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"labelTrainIds\.png: mask values 19 \(16 pixels"):
        dataset[1]


def test_unknown_label_id_and_size_mismatch_name_the_file(tmp_path: Path) -> None:
    ids, _ = label_ids()
    ids[0, 0] = 40
    root = write_cityscapes(tmp_path, "val", "lindau", {"lindau_000000_000019": ids})
    dataset = Cityscapes(root, "val")
    with pytest.raises(DataFormatError, match=r"labelIds\.png: mask values 40 .*allowed: 0-33"):
        dataset[0]
    write_image(dataset.samples[0][1], label_ids()[0])
    write_image(dataset.samples[0][0], random_rgb(4, 5))
    with pytest.raises(DataFormatError, match=r"labelIds\.png: mask is 4x4 but its image '.*"):
        dataset[0]


def test_missing_split_folder_shows_the_layout(tmp_path: Path) -> None:
    ids, _ = label_ids()
    root = write_cityscapes(tmp_path, "train", "aachen", {"aachen_000000_000019": ids})
    with pytest.raises(DatasetNotFoundError, match=r"(?s)'.*leftImg8bit/val'.*gtFine/"):
        Cityscapes(root, "val")
    (root / "leftImg8bit" / "val").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"no files matching '\*/\*_leftImg8bit\.png'"):
        Cityscapes(root, "val")
