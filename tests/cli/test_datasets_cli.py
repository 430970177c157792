from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.fixtures import random_rgb, truncate, write_image, write_voc
from PIL import Image

from fcnlab.cli.main import main


def write_pair(
    root: Path, stem: str, mask: np.ndarray, image_size: tuple[int, int] | None = None
) -> None:
    """An RGB JPEG image and an index PNG mask (mode L, values = classes) with the same stem."""
    height, width = image_size or mask.shape
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "images" / f"{stem}.jpg")
    Image.fromarray(mask.astype(np.uint8), mode="L").save(root / "masks" / f"{stem}.png")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    # Hand-worked counts: class 0 has 12 + 7 = 19 pixels, class 1 has 4 (image a), class 2 has 8
    # (image b); one pixel of b is 255 (ignore), so 31 pixels are labelled.
    a = np.zeros((4, 4), dtype=np.uint8)
    a[:2, :2] = 1
    b = np.zeros((4, 4), dtype=np.uint8)
    b[2:, :] = 2
    b[0, 0] = 255
    write_pair(tmp_path, "a", a)
    write_pair(tmp_path, "b", b)
    return tmp_path


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")


def test_check_valid_folder_prints_counts_and_plots(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chart = tmp_path / "freq.png"
    code = main(["datasets", "check", str(folder), "--format", "folder", "--plot", str(chart)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "no problems found" in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│ class_" in line}
    assert rows.keys() == {"class_0", "class_1", "class_2"}
    # class, pixels, share %, images: 19 / 31, 4 / 31, 8 / 31 of the labelled pixels
    assert [cell.strip() for cell in rows["class_0"].split("│")[1:5]] == [
        "class_0",
        "19",
        "61.29",
        "2",
    ]
    assert [cell.strip() for cell in rows["class_1"].split("│")[1:5]] == [
        "class_1",
        "4",
        "12.90",
        "1",
    ]
    assert [cell.strip() for cell in rows["class_2"].split("│")[1:5]] == [
        "class_2",
        "8",
        "25.81",
        "1",
    ]
    with Image.open(chart) as picture:
        assert picture.format == "PNG" and picture.width > 100


def test_check_reports_bad_files_and_exits_nonzero(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pair(folder, "wrong_size", np.zeros((4, 4)), image_size=(5, 6))
    Image.new("RGB", (4, 4)).save(folder / "images" / "lonely.jpg")
    (folder / "masks" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.new("RGB", (4, 4)).save(folder / "images" / "broken.jpg")
    code = main(["datasets", "check", str(folder), "--format", "folder"])
    out = capsys.readouterr().out
    assert code == 1
    assert "3 problems found" in out
    for name in ("wrong_size.png", "lonely.jpg", "broken.png"):
        assert name in out
    assert "6x5" in out or "5x6" in out, "the size mismatch names the sizes"


def test_check_split_folders_are_checked_separately(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pair(tmp_path / "x", "one", np.ones((4, 4)))
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
        (tmp_path / "x" / sub).rename(tmp_path / sub / "train")
    write_pair(tmp_path / "v", "two", np.zeros((4, 4)))
    for sub in ("images", "masks"):
        (tmp_path / "v" / sub).rename(tmp_path / sub / "val")
    # train implies classes 0..1 and val only class 0: the chart still draws both splits
    chart = tmp_path / "chart.png"
    assert (
        main(["datasets", "check", str(tmp_path), "--format", "folder", "--plot", str(chart)]) == 0
    )
    out = capsys.readouterr().out
    assert "Class pixel frequencies: train" in out and "Class pixel frequencies: val" in out
    assert chart.stat().st_size > 0


def test_missing_root_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["datasets", "check", str(missing), "--format", "voc"]) == 1
    assert str(missing) in capsys.readouterr().err


def test_missing_layout_shows_the_expected_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", "check", str(tmp_path), "--format", "voc"]) == 1
    assert "JPEGImages" in capsys.readouterr().err


def test_list_names_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "list"]) == 0
    names = capsys.readouterr().out.split()
    assert set(names) >= {"voc", "cityscapes", "coco", "ade20k", "folder", "shapes"}
    assert main(["datasets", "list", "--task", "detection"]) == 0
    assert capsys.readouterr().out.split() == ["coco", "shapes", "voc"]


def write_voc_boxes(root: Path, objects: dict[str, list[tuple[str, int, tuple[int, ...]]]]) -> Path:
    """A VOC detection tree: 8x10 JPEGs, devkit XML annotations (name, difficult, 1-based
    bndbox) and ``ImageSets/Main/train.txt`` listing every image."""
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for stem, records in objects.items():
        Image.new("RGB", (10, 8)).save(root / "JPEGImages" / f"{stem}.jpg")
        xml = "".join(
            f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>"
            f"<xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax>"
            "</bndbox></object>"
            for name, difficult, box in records
        )
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>10</width>"
            f"<height>8</height><depth>3</depth></size>{xml}</annotation>"
        )
    (root / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{s}\n" for s in objects))
    return root


def test_check_detection_counts_boxes_per_class_and_names_bad_objects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dogs = [("dog", 0, (1, 1, 4, 4)), ("dog", 1, (5, 2, 10, 8))]
    root = write_voc_boxes(tmp_path, {"a": dogs, "b": [("unicorn", 0, (1, 1, 2, 2))], "c": []})
    command = ["datasets", "check", str(root), "--format", "voc", "--task", "detection"]
    assert main([*command, "--split", "train"]) == 1
    out = capsys.readouterr().out
    assert "1 problem found" in out and "b.xml" in out and "class 'unicorn'" in out
    write_voc_boxes(tmp_path, {"a": dogs, "b": [("cat", 0, (1, 1, 2, 2))], "c": []})
    assert main([*command, "--split", "train"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│ " in line}
    # class, boxes, share %, images, crowd, difficult: 2 of the 3 boxes are dogs, one difficult
    assert [cell.strip() for cell in rows["dog"].split("│")[1:7]] == [
        "dog", "2", "66.67", "1", "0", "1",
    ]  # fmt: skip
    assert [cell.strip() for cell in rows["cat"].split("│")[2:7]] == ["1", "33.33", "1", "0", "0"]
    assert "images without boxes: 1 of 3" in out


def test_check_detection_rejects_formats_without_boxes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["datasets", "check", str(tmp_path), "--format", "ade20k", "--task", "detection"])
    assert "--format ade20k has no boxes; with --task detection use voc, coco" in (
        capsys.readouterr().err
    )


def test_check_reads_split_folders_of_either_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pair(tmp_path / "train", "one", np.ones((4, 4)))
    write_pair(tmp_path / "val", "two", np.ones((4, 4)))
    assert main(["datasets", "check", str(tmp_path), "--format", "folder"]) == 0
    out = capsys.readouterr().out
    assert "Class pixel frequencies: train" in out and "Class pixel frequencies: val" in out


def test_check_reports_an_empty_split_as_a_problem(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a split folder that holds nothing (images/val/ made, never filled)
    root = tmp_path / "split"
    write_pair(root / "train", "one", np.ones((4, 4)))
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "masks").mkdir()
    assert main(["datasets", "check", str(root), "--format", "folder"]) == 1
    out = capsys.readouterr().out
    assert "1 problem found" in out and "no problems found" not in out
    assert f"images folder '{root / 'val' / 'images'}' holds no" in out
    # a split list that names no image (VOC's ImageSets/Segmentation/val.txt left empty)
    voc = write_voc(tmp_path / "voc", {"train": ["a"], "val": []}, {"a": np.zeros((4, 4))})
    assert main(["datasets", "check", str(voc), "--format", "voc"]) == 1
    out = capsys.readouterr().out
    assert "split 'val' holds no images" in out and "1 problem found" in out


def test_check_prints_bracketed_file_names_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "set[v2]"
    write_pair(root, "fine", np.zeros((4, 4)))
    write_pair(root, "broken[final]", np.zeros((4, 4)))
    truncate(root / "images" / "broken[final].jpg")
    chart = tmp_path / "chart[1].png"
    code = main(["datasets", "check", str(root), "--format", "folder", "--plot", str(chart)])
    out = capsys.readouterr().out
    assert code == 1
    assert "broken[final].jpg" in out.replace("\n", "").replace("│", "").replace(" ", "")
    assert "set[v2]" in out and f"written to {chart}" in out


def test_check_takes_data_set_options_and_flags_binary_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[1:3, 1:3] = 255
    write_pair(tmp_path / "train", "crack", mask)
    command = ["datasets", "check", str(tmp_path), "--format", "folder"]
    assert main(command) == 1
    out = capsys.readouterr().out
    assert "holds only the values 0 and 255" in out and "mask_values: binary" in out
    assert main([*command, "--option", "mask_values=binary"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if "│ " in line}
    # 4 of the 16 pixels are foreground: class 1 since 255 is read as 1
    assert [cell.strip() for cell in rows["foreground"].split("│")[2:4]] == ["4", "25.00"]


def test_check_notes_exif_turned_images(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(folder / "images" / "a.jpg", random_rgb(4, 4), orientation=6)
    assert main(["datasets", "check", str(folder), "--format", "folder"]) == 0
    out = capsys.readouterr().out
    assert "note: 1 image carries an EXIF orientation tag" in out
