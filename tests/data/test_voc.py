from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import write_palette_png, write_sbd, write_voc

from fcnlab.data.datasets import VOCSegmentation, read_sbd_mask
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import VOC_CLASSES
from fcnlab.data.registry import build_dataset


def object_mask(label: int, shape: tuple[int, int] = (10, 12), top: int = 2) -> np.ndarray:
    """Background with one box of ``label`` and VOC's 255 border one pixel around it."""
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top - 1 : top + 5, 2:9] = 255
    mask[top : top + 4, 3:8] = label
    return mask


@pytest.fixture
def voc(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    masks = {
        "2007_000032": object_mask(1),
        "2007_000033": object_mask(15),
        "2008_000001": object_mask(20),
    }
    splits = {"train": ["2007_000032", "2007_000033"], "val": ["2008_000001"]}
    splits["trainval"] = splits["train"] + splits["val"]
    return write_voc(tmp_path / "VOCdevkit" / "VOC2012", splits, masks), masks


def as_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask.astype(np.int64))


def test_reads_palette_masks_as_indices_with_border_kept(voc) -> None:
    root, masks = voc
    dataset = VOCSegmentation(root, "train")
    assert len(dataset) == 2 and dataset.classes == VOC_CLASSES and dataset.num_classes == 21
    assert dataset.palette.shape == (21, 3)
    for index, image_id in enumerate(["2007_000032", "2007_000033"]):
        image, mask = dataset[index]
        assert image.shape == (3, 10, 12) and image.dtype == torch.float32
        assert torch.equal(mask, as_tensor(masks[image_id]))
    assert set(dataset[1][1].unique().tolist()) == {0, 15, 255}
    assert len(VOCSegmentation(root, "trainval")) == 3


def test_registry_builds_voc(voc) -> None:
    root, masks = voc
    dataset = build_dataset("voc", root=root, split="val")
    assert isinstance(dataset, VOCSegmentation)
    assert torch.equal(dataset[0][1], as_tensor(masks["2008_000001"]))


def test_missing_root_split_list_and_unknown_split(voc, tmp_path: Path) -> None:
    root, _ = voc
    with pytest.raises(DatasetNotFoundError, match=r"(?s)'.*nowhere' does not exist.*JPEGImages/"):
        VOCSegmentation(tmp_path / "nowhere")
    (root / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"(?s)split list '.*val\.txt'.*ImageSets/"):
        VOCSegmentation(root, "val")
    with pytest.raises(ValueError, match="no split 'test'"):
        VOCSegmentation(root, "test")


def test_out_of_range_mask_value_names_file_and_value(voc) -> None:
    root, _ = voc
    bad = object_mask(1)
    bad[0, 0] = 21
    write_palette_png(root / "SegmentationClass" / "2007_000033.png", bad)
    dataset = VOCSegmentation(root, "train")
    with pytest.raises(DataFormatError, match=r"2007_000033\.png: mask values 21 \(1 pixels\)"):
        dataset[1]


def test_sbd_adds_its_images_except_val_and_prefers_voc_annotations(voc, tmp_path: Path) -> None:
    root, masks = voc
    sbd_masks = {
        "2007_000033": object_mask(7),  # in VOC train: VOC's own mask wins
        "2008_000001": object_mask(9),  # in VOC val: never trained on
        "2008_000002": object_mask(12, top=4),  # SBD only, image only in SBD's img/
    }
    sbd = write_sbd(tmp_path / "benchmark_RELEASE" / "dataset", sbd_masks)
    dataset = VOCSegmentation(root, "train", sbd_root=sbd)
    assert [image.stem for image, _ in dataset.samples] == [
        "2007_000032",
        "2007_000033",
        "2008_000002",
    ]
    assert torch.equal(dataset[1][1], as_tensor(masks["2007_000033"]))
    image, mask = dataset[2]
    assert dataset.samples[2][0] == sbd / "img" / "2008_000002.jpg"
    assert image.shape == (3, 10, 12) and torch.equal(mask, as_tensor(sbd_masks["2008_000002"]))
    with pytest.raises(ValueError, match="SBD images are for training"):
        VOCSegmentation(root, "val", sbd_root=sbd)


def test_sbd_mask_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 MAT-file, but nothing after")
    with pytest.raises(DataFormatError, match=r"broken\.mat: cannot read SBD mask"):
        read_sbd_mask(tmp_path / "broken.mat")
    from scipy.io import savemat

    savemat(tmp_path / "other.mat", {"GTinst": {"Segmentation": np.zeros((2, 2))}})
    with pytest.raises(DataFormatError, match=r"other\.mat: SBD mask has no GTcls"):
        read_sbd_mask(tmp_path / "other.mat")


def test_sbd_without_scipy_names_the_extra(voc, tmp_path: Path, monkeypatch) -> None:
    root, _ = voc
    (tmp_path / "sbd" / "cls").mkdir(parents=True)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match=r"needs scipy: pip install 'fcnlab\[sbd\]'"):
        VOCSegmentation(root, "train", sbd_root=tmp_path / "sbd")
