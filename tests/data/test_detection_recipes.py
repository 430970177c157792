"""The shipped detection configs run end to end on data written in VOC's and COCO's on-disk
formats: `fcnlab train -c configs/... data.root=FIXTURE` with only sizes and lengths shrunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.fixtures import write_coco, write_voc_detection

from fcnlab.cli.main import main

CONFIGS = Path(__file__).parents[2] / "configs"
# Tiny images and one step per stage; the data, model family, schedule and evaluation are the
# config's own (encoder weights left out: no download).
SHRINK = [
    "model.encoder_weights=null",
    "data.num_workers=0",
    "data.transforms.crop_size=64",
    "data.transforms.eval_size=64",
    "train.batch_size=2",
    "train.amp=off",
    "train.channels_last=false",
    "train.device=cpu",
    "train.log_every=1",
    "eval.batch_size=2",
    "eval.num_overlays=1",
    "output.tensorboard=false",
]


def voc_fixture(root: Path) -> Path:
    sizes = {f"2007_{i:06d}": (48 + 8 * i, 64) for i in range(4)}
    objects = {
        name: [
            {"name": "dog", "bndbox": (5, 3, 30, 40), "difficult": 0},
            {"name": "person", "bndbox": (33, 10, 60, 44), "difficult": i % 2},
        ]
        for i, name in enumerate(sizes)
    }
    splits = {"trainval": list(sizes)[:2], "test": list(sizes)[2:]}
    return write_voc_detection(root, splits, objects, sizes)


def coco_fixture(root: Path) -> Path:
    for split, first in (("train", 1), ("val", 10)):
        images = [
            {"id": first + i, "file_name": f"{first + i:012d}.jpg", "height": 56, "width": 72}
            for i in range(2)
        ]
        annotations = [
            {"image_id": image["id"], "category_id": category, "bbox": bbox, "segmentation": []}
            for image in images
            for category, bbox in ((1, [4, 6, 30, 40]), (18, [40, 8, 25, 30]))
        ]
        write_coco(root, split, images, annotations, {1: "person", 18: "dog"})
    return root


@pytest.mark.parametrize(
    ("config", "make_data", "lengths"),
    [
        (
            "centernet_voc",
            voc_fixture,
            ["stages.0.epochs=1", "stages.1.epochs=1", "train.milestones=[1]"],
        ),
        ("fcos_coco", coco_fixture, ["stages.0.iterations=2", "train.milestones=[1]"]),
    ],
)
def test_shipped_detection_config_trains_and_evaluates(
    tmp_path: Path, config: str, make_data, lengths: list[str]
) -> None:
    root = make_data(tmp_path / "data")
    overrides = [f"data.root={root}", f"output.root={tmp_path / 'runs'}", *SHRINK, *lengths]
    assert main(["train", "-c", str(CONFIGS / f"{config}.yaml"), *overrides]) == 0

    run = tmp_path / "runs" / config
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if r["kind"] == "eval"]
    assert evaluations and all(r["task"] == "detection" for r in evaluations)
    assert all(0.0 <= r["AP"] <= 1.0 or r["AP"] is None for r in evaluations)
    for name in ("final.safetensors", "curves.png", "detections.png", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
