"""``fcnlab datasets check --task instance`` on the instance views of COCO, VOC and Cityscapes:
every bad annotation is a problem named by file and annotation, and the check goes on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.fixtures import rectangle_polygon, uncompressed_rle, write_coco
from helpers.instance_fixtures import write_cityscapes_instances, write_voc_instances

from fcnlab.cli.main import main
from fcnlab.data.palettes import COCO_CATEGORIES

PERSON, DOG = 1, 18


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")


def check(root: Path, format_name: str, split: str) -> list[str]:
    return ["datasets", "check", str(root), "--format", format_name, "--task", "instance",
            "--split", split]  # fmt: skip


def test_coco_problems_are_named_and_the_valid_images_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [
        {"id": 1, "file_name": "a.jpg", "height": 8, "width": 10},
        {"id": 2, "file_name": "b.jpg", "height": 8, "width": 10},
        {"id": 3, "file_name": "c.jpg", "height": 8, "width": 10},
    ]
    crowd = np.zeros((8, 10), dtype=bool)
    crowd[4:, 5:] = True
    annotations = [
        {"image_id": 1, "category_id": PERSON, "segmentation": rectangle_polygon(0, 0, 4, 4)},
        {"image_id": 1, "category_id": PERSON, "segmentation": uncompressed_rle(crowd),
         "iscrowd": 1},
        {"image_id": 2, "category_id": DOG, "segmentation": [[1, 1, 3, 3]]},  # id 3
        {"image_id": 3, "category_id": 12, "segmentation": rectangle_polygon(0, 0, 2, 2)},  # id 4
    ]  # fmt: skip
    root = write_coco(tmp_path / "coco", "val", images, annotations, COCO_CATEGORIES)
    code = main(check(root, "coco", "val"))
    out = capsys.readouterr().out
    assert code == 1, out
    assert "annotation 3 of image 2 ('b.jpg'): its polygon 1 has 2 points" in out
    assert "annotation 4 of image 3 ('c.jpg'): category id 12 is not among" in out
    assert "instances_val2017.json" in out and "2 problems found" in out
    split_row = next(line for line in out.splitlines() if line.startswith("│ val "))
    assert [cell.strip() for cell in split_row.split("│")[1:5]] == ["val", "3", "2", "checked"]


def test_voc_and_cityscapes_instance_files_check_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = np.zeros((6, 8), dtype=np.uint8)
    objects[1:4, 1:3], objects[1:4, 3:5], objects[0, :] = 1, 2, 255
    classes = np.where(objects == 255, 255, np.where(objects > 0, 15, 0)).astype(np.uint8)
    voc = write_voc_instances(
        tmp_path / "VOC2012", {"val": ["2007_000033"]}, {"2007_000033": objects},
        {"2007_000033": classes},
    )  # fmt: skip
    assert main(check(voc, "voc", "val")) == 0
    assert "no problems found" in capsys.readouterr().out
    ids = np.full((6, 8), 7, dtype=np.int64)
    ids[1:4, 1:3], ids[1:4, 4:6] = 26000, 26
    city = write_cityscapes_instances(
        tmp_path / "cs", "val", "lindau", {"lindau_000000_000019": ids}
    )
    assert main(check(city, "cityscapes", "val")) == 0
    assert "no problems found" in capsys.readouterr().out
    ids[0, 0] = 7001
    write_cityscapes_instances(tmp_path / "cs", "val", "lindau", {"lindau_000000_000019": ids})
    assert main(check(city, "cityscapes", "val")) == 1
    assert "instance ids 7001 are neither Cityscapes label ids" in capsys.readouterr().out
