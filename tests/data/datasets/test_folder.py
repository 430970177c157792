from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.fixtures import random_rgb, truncate, write_image, write_palette_png
from PIL import Image

from fcnlab.config import load_config
from fcnlab.data.datasets import ImageMaskFolder
from fcnlab.data.datasets.folder import folder_splits
from fcnlab.data.io import DataFormatError, DatasetNotFoundError
from fcnlab.data.palettes import voc_palette
from fcnlab.data.registry import build_dataset
from fcnlab.engine.build import build_split, check_num_classes

MASKS = {
    "a": np.array([[0, 1, 1, 2], [2, 2, 0, 255], [0, 0, 0, 0]], dtype=np.uint8),
    "b": np.array([[1, 1, 1, 1], [0, 0, 0, 0], [255, 255, 0, 0]], dtype=np.uint8),
}


def write_folder(
    root: Path, colour: bool = False, images: str = "images", masks: str = "masks"
) -> Path:
    """``{images}/{stem}.jpg`` with ``{masks}/{stem}.png`` under ``root``: grayscale index masks,
    or colour masks painted with VOC's palette."""
    for index, (stem, mask) in enumerate(MASKS.items()):
        write_image(root / images / f"{stem}.jpg", random_rgb(3, 4, seed=index))
        write_image(root / masks / f"{stem}.png", voc_palette()[mask] if colour else mask)
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


def test_registry_reads_both_split_layouts(tmp_path: Path) -> None:
    first = write_folder(tmp_path / "first", images="images/val", masks="masks/val")
    dataset = build_dataset("folder", root=first, split="val", classes=["bg", "cat", "dog"])
    assert dataset.samples[0] == (first / "images/val/a.jpg", first / "masks/val/a.png")
    second = write_folder(tmp_path / "second" / "train")  # {split}/images, {split}/masks
    dataset = build_dataset("folder", root=tmp_path / "second", split="train")
    assert dataset.samples[0] == (second / "images/a.jpg", second / "masks/a.png")
    assert torch.equal(dataset[0][1], expected("a"))


def test_a_split_that_is_not_there_is_refused_with_the_splits_found(tmp_path: Path) -> None:
    write_folder(tmp_path / "train")
    write_folder(tmp_path / "val")
    (tmp_path / "images" / ".ipynb_checkpoints").mkdir(parents=True)  # hidden: not a split
    assert folder_splits(tmp_path) == ("train", "val")
    with pytest.raises(DatasetNotFoundError, match=r"no split 'vall'; its splits are train, val"):
        build_dataset("folder", root=tmp_path, split="vall")


def test_a_folder_without_splits_is_only_split_all(tmp_path: Path) -> None:
    # train and val would both be every image: refused, whatever the split's name.
    root = write_folder(tmp_path)
    assert folder_splits(root) == ("all",)
    for split in ("train", "val", "tets"):
        with pytest.raises(DatasetNotFoundError) as info:
            build_dataset("folder", root=root, split=split)
        message = str(info.value)
        assert f"'{root / 'images'}' has no split folders, so split '{split}' would be" in message
        assert "images/{split}/ and masks/{split}/, or use split 'all'" in message
    assert len(build_dataset("folder", root=root, split="all")) == 2


def test_images_and_masks_options_name_the_folders(tmp_path: Path) -> None:
    for split in ("2023", "2024"):
        write_folder(tmp_path, images=f"photos_{split}", masks=f"labels_{split}")
    options = {"images": "photos_{split}", "masks": "labels_{split}"}
    dataset = build_dataset("folder", root=tmp_path, split="2024", **options)
    assert dataset.samples[0] == (tmp_path / "photos_2024/a.jpg", tmp_path / "labels_2024/a.png")
    by_split = {"images": {"train": "photos_2023"}, "masks": {"train": "labels_2023"}}
    dataset = build_dataset("folder", root=tmp_path, split="train", **by_split)
    assert dataset.samples[0][0] == tmp_path / "photos_2023/a.jpg"
    with pytest.raises(ValueError, match=r"for the splits train, not for split 'val'"):
        build_dataset("folder", root=tmp_path, split="val", **by_split)
    plain = {"images": "photos_2023", "masks": "labels_2023"}
    with pytest.raises(ValueError, match=r"images = 'photos_2023' names no split, so split 'val'"):
        build_dataset("folder", root=tmp_path, split="val", **plain)
    assert len(build_dataset("folder", root=tmp_path, split="all", **plain)) == 2
    with pytest.raises(ValueError, match=r"the option images is set but not masks; set both"):
        build_dataset("folder", root=tmp_path, split="all", images="photos_2023")


def test_missing_or_empty_folders_show_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"(?s)'.*nowhere'.*images/\{split\}/"):
        build_dataset("folder", root=tmp_path / "nowhere")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "masks").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"images folder '.*empty/images' holds no"):
        build_dataset("folder", root=tmp_path / "empty", split="all")


def test_jpeg_masks_are_refused_for_being_lossy(tmp_path: Path) -> None:
    root = write_folder(tmp_path)
    (root / "masks" / "b.png").unlink()
    write_image(root / "masks" / "b.jpg", MASKS["b"])
    with pytest.raises(DataFormatError) as info:
        ImageMaskFolder(root / "images", root / "masks")
    assert "1 files are JPEG masks: '" in str(info.value) and "b.jpg'" in str(info.value)
    assert "lossy compression changes label values" in str(info.value)
    assert "save the masks as PNG" in str(info.value)
    dataset = ImageMaskFolder(root / "images", root / "masks", skip_invalid=True)
    assert len(dataset) == 1 and dataset.skip_log.problems[0].file == str(root / "masks/b.jpg")
    assert dataset.skip_log.problems[0].reason.startswith("is a JPEG mask: JPEG's lossy")


def write_binary(root: Path) -> Path:
    """A ``train`` split of two images whose masks are saved 0/255, as most binary tools do."""
    for index, stem in enumerate(["a", "b"]):
        mask = np.zeros((4, 6), dtype=np.uint8)
        mask[index : index + 2, 1:4] = 255
        write_image(root / "images" / "train" / f"{stem}.jpg", random_rgb(4, 6, seed=index))
        write_image(root / "masks" / "train" / f"{stem}.png", mask)
    return root


def test_binary_0_255_masks_are_refused_rather_than_ignored(tmp_path: Path) -> None:
    root = write_binary(tmp_path)
    # classes counted from the masks: the check fires while they are read
    with pytest.raises(DataFormatError) as info:
        build_dataset("folder", root=root, split="train")
    assert info.value.file == str(root / "masks/train/a.png")
    assert "holds only the values 0 and 255 and 255 is the ignore index" in info.value.reason
    assert "set the option mask_values: binary" in info.value.reason
    # classes given: the first sample fails, naming the file and the option
    dataset = build_dataset("folder", root=root, split="train", classes=["bg", "crack"])
    with pytest.raises(DataFormatError, match=r"a\.png: mask holds only the values 0 and 255"):
        dataset[0]
    # mask_values: index reads 255 as stored, i.e. as the ignore index
    dataset = build_dataset("folder", root=root, split="train", mask_values="index")
    assert dataset.classes == ("class_0",) and int(dataset[0][1].max()) == 255


def test_mask_values_binary_reads_255_as_class_1(tmp_path: Path) -> None:
    root = write_binary(tmp_path)
    dataset = build_dataset("folder", root=root, split="train", mask_values="binary")
    assert dataset.classes == ("background", "foreground") and dataset.num_classes == 2
    with Image.open(root / "masks/train/b.png") as stored:
        expected_mask = torch.from_numpy((np.asarray(stored) == 255).astype(np.int64))
    assert torch.equal(dataset[1][1], expected_mask) and int(expected_mask.sum()) == 6
    write_image(root / "masks" / "train" / "b.png", np.full((4, 6), 128, np.uint8))
    with pytest.raises(DataFormatError, match=r"b\.png: mask values 128 \(24 pixels\)"):
        dataset[1]
    with pytest.raises(ValueError, match=r"mask_values = 'bin': expected 'index' .* or 'binary'"):
        build_dataset("folder", root=root, split="train", mask_values="bin")


def test_mask_values_binary_through_the_config(tmp_path: Path) -> None:
    # What training reads: the config's data.options reach the data set, and class 1 survives
    # the training transforms (nearest-neighbour for masks).
    root = write_binary(tmp_path / "data")
    config_file = tmp_path / "binary.yaml"
    config_file.write_text(
        f"model: {{name: fcn32s, num_classes: 2}}\n"
        f"data:\n  name: folder\n  root: {root}\n  options: {{mask_values: binary}}\n"
        "  transforms: {crop_size: 4, flip: 0.0, scale_range: [1.0, 1.0]}\n"
    )
    config = load_config(config_file)
    train_set = build_split(config.data, "train", train=True)
    check_num_classes(train_set, config.model.num_classes, "training")
    masks = [train_set[index][1] for index in range(len(train_set))]
    assert sorted(torch.unique(torch.cat([m.flatten() for m in masks])).tolist()) == [0, 1]


def test_mask_map_renames_stored_values(tmp_path: Path) -> None:
    root = write_folder(tmp_path, images="train/images", masks="train/masks")
    dataset = build_dataset("folder", root=root, split="train", mask_map={2: 1, 1: 2, "255": 0})
    swapped = {0: 0, 1: 2, 2: 1, 255: 0}
    reference = np.vectorize(swapped.get)(MASKS["a"]).astype(np.int64)
    assert torch.equal(dataset[0][1], torch.from_numpy(reference))
    with pytest.raises(ValueError, match=r"mask_map maps 'x' to 1; expected .* whole numbers"):
        build_dataset("folder", root=root, split="train", mask_map={"x": 1})
    with pytest.raises(ValueError, match=r"already maps 255 to 1; drop mask_map"):
        build_dataset("folder", root=root, split="train", mask_values="binary", mask_map={1: 1})


def test_class_count_mismatch_names_the_masks_and_values(tmp_path: Path) -> None:
    root = write_folder(tmp_path)
    stray = MASKS["b"].copy()
    stray[0, 0] = 37
    write_image(root / "masks" / "b.png", stray)
    dataset = ImageMaskFolder(root / "images", root / "masks")
    assert dataset.num_classes == 38
    with pytest.raises(ValueError) as info:
        check_num_classes(dataset, 3, "training")
    assert str(info.value) == (
        "model.num_classes = 3 but the training data set has 38 classes; its classes were "
        "counted from the mask values, and values 37, not classes 0-2, are in 1 masks: "
        f"'{root / 'masks' / 'b.png'}'; correct those masks, or name the classes with the "
        "option classes (data.options.classes)"
    )
    write_image(root / "masks" / "b.png", np.minimum(MASKS["b"], 1))
    write_image(root / "masks" / "a.png", np.minimum(MASKS["a"], 1))
    with pytest.raises(ValueError, match=r"has 2 classes; .* whose largest is 1; name all 3"):
        check_num_classes(ImageMaskFolder(root / "images", root / "masks"), 3, "validation")
    given = ImageMaskFolder(root / "images", root / "masks", classes=["a", "b"])
    assert given.classes_note(3) == ""


def test_a_bad_file_met_by_indexing_points_to_datasets_check(tmp_path: Path) -> None:
    root = write_folder(tmp_path)
    truncate(root / "images" / "b.jpg")
    dataset = ImageMaskFolder(root / "images", root / "masks", classes=["bg", "cat", "dog"])
    with pytest.raises(DataFormatError) as info:
        dataset[1]
    assert info.value.file == str(root / "images" / "b.jpg")
    assert "cannot read image" in info.value.reason
    assert "`fcnlab datasets check` lists every such file of a data set at once" in str(info.value)
    assert [problem.file for problem in dataset.check()] == [str(root / "images" / "b.jpg")]


def test_image_and_mask_with_exif_stay_aligned(tmp_path: Path) -> None:
    # A square photo with orientation 6 and its mask, both in stored pixel order: turning only
    # the image (as before) would put the object in another corner than its mask.
    array = np.zeros((8, 8, 3), dtype=np.uint8)
    array[:4, :4] = 255
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:4, :4] = 1
    write_image(tmp_path / "images" / "x.jpg", array, orientation=6)
    write_image(tmp_path / "masks" / "x.png", mask)
    image, label = ImageMaskFolder(tmp_path / "images", tmp_path / "masks")[0]
    bright = image.mean(dim=0) > 0.5
    assert torch.equal(bright, label == 1)
