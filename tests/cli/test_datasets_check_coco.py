"""``fcnlab datasets check --format coco`` on files whose polygons break the format: every bad
annotation is a problem in the table, named by file and annotation, and the check goes on; a
labelling tool's export is found through ``--option`` and counted by its own categories."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fixtures import rectangle_polygon, write_coco, write_coco_export

from fcnlab.cli.main import main
from fcnlab.data.palettes import COCO_CATEGORIES

PERSON, DOG = 1, 18


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")


def test_check_lists_polygons_of_one_and_two_points_as_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [
        {"id": 1, "file_name": "a.jpg", "height": 8, "width": 10},
        {"id": 2, "file_name": "b.jpg", "height": 8, "width": 10},
        {"id": 3, "file_name": "c.jpg", "height": 8, "width": 10},
    ]
    annotations = [
        {"image_id": 1, "category_id": PERSON, "segmentation": [[2, 3]]},  # id 1
        {"image_id": 2, "category_id": DOG, "segmentation": [[1, 1, 5, 5]]},  # id 2
        {"image_id": 3, "category_id": DOG, "segmentation": rectangle_polygon(0, 0, 4, 4)},
    ]
    root = write_coco(tmp_path / "coco", "val", images, annotations, COCO_CATEGORIES)
    code = main(["datasets", "check", str(root), "--format", "coco", "--split", "val"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "annotation 1 of image 1 ('a.jpg'): its polygon 1 has 1 point" in out
    assert "annotation 2 of image 2 ('b.jpg'): its polygon 1 has 2 points" in out
    assert "instances_val2017.json" in out and "2 problems found" in out
    # the valid image is counted: 16 dog pixels (VOC's classes: dog is class 12)
    dog_row = next(line for line in out.splitlines() if "│ dog " in line)
    assert dog_row.split("│")[2].strip() == "16"


def test_check_reads_a_labelling_tools_export_through_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Roboflow's layout: each split's folder holds its images and _annotations.coco.json.
    categories = [{"id": 1, "name": "crack"}, {"id": 2, "name": "dent"}]
    images = [{"id": 1, "file_name": "a.jpg", "height": 8, "width": 10}]
    found = [
        {"id": 1, "image_id": 1, "category_id": 2, "segmentation": rectangle_polygon(0, 0, 2, 3)},
        {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 9, 9]]},
    ]
    folder = tmp_path / "valid"
    write_coco_export(folder / "_annotations.coco.json", folder, images, found, categories)
    command = ["datasets", "check", str(tmp_path), "--format", "coco", "--split", "valid"]
    options = [
        "--option",
        "annotations='{split}/_annotations.coco.json'",
        "--option",
        "images='{split}'",
    ]
    assert main([*command, *options]) == 1
    out = capsys.readouterr().out
    assert "annotation 2 of image 1 ('a.jpg'): its polygon 1 has 2 points" in out
    assert "│ crack " in out and "│ dent " in out and "│ person " not in out
