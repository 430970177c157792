"""The shipped CondInst configs train through `fcnlab train -c configs/...` with only sizes and
lengths shrunk, `condinst_coco` on a COCO-format instances file written in the real on-disk
format. (That `condinst_shapes` is the instance demo's recipe is checked with the demo.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from helpers.fixtures import compressed_rle, rectangle_polygon, write_coco

from fcnlab.cli.main import main

CONFIGS = Path(__file__).parents[1] / "configs"
COMMON = [
    "train.batch_size=2",
    "train.warmup_steps=1",
    "train.log_every=1",
    "eval.batch_size=2",
    "eval.num_overlays=1",
    "output.tensorboard=false",
]


def finished_run(run: Path) -> list[dict[str, Any]]:
    """The run's evaluation records, after checking the files every instance run writes."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for name in ("final.safetensors", "curves.png", "instances.png", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    evaluations = [r for r in records if r["kind"] == "eval"]
    assert evaluations and all(r["task"] == "instance" for r in evaluations)
    for record in evaluations:
        for key in ("mask_AP", "mask_AP50", "box_AP"):
            assert record[key] is None or 0.0 <= record[key] <= 1.0, key
    return evaluations


def test_condinst_shapes_trains_two_steps_and_evaluates(tmp_path: Path) -> None:
    overrides = [
        f"output.root={tmp_path}",
        "data.options.num_images=4",
        "data.options.size=64",
        "data.val_options.num_images=2",
        "data.transforms.crop_size=64",
        "stages.0.epochs=1",
        *COMMON,
    ]
    assert main(["train", "-c", str(CONFIGS / "condinst_shapes.yaml"), *overrides]) == 0
    evaluations = finished_run(tmp_path / "condinst_shapes")
    assert evaluations[-1]["num_images"] == 2


def coco_instances(root: Path) -> Path:
    """Two splits of two 56x72 images, each with a polygon person and an RLE dog."""
    dog = np.zeros((56, 72), dtype=bool)
    dog[10:40, 40:66] = True
    dog[20:30, 50:56] = False
    for split, first in (("train", 1), ("val", 10)):
        images = [
            {"id": first + i, "file_name": f"{first + i:012d}.jpg", "height": 56, "width": 72}
            for i in range(2)
        ]
        annotations = [
            annotation
            for image in images
            for annotation in (
                {"image_id": image["id"], "category_id": 1,
                 "segmentation": rectangle_polygon(6, 4, 46, 34)},
                {"image_id": image["id"], "category_id": 18, "segmentation": compressed_rle(dog),
                 "iscrowd": 0},
            )
        ]  # fmt: skip
        write_coco(root, split, images, annotations, {1: "person", 18: "dog"})
    return root


def test_condinst_coco_trains_and_evaluates_on_a_coco_instances_file(tmp_path: Path) -> None:
    root = coco_instances(tmp_path / "data")
    overrides = [
        f"data.root={root}",
        f"output.root={tmp_path / 'runs'}",
        "model.encoder_weights=null",
        "data.num_workers=0",
        "data.transforms.crop_size=64",
        "data.transforms.eval_size=64",
        "train.amp=off",
        "train.channels_last=false",
        "train.device=cpu",
        "stages.0.iterations=2",
        "train.milestones=[1]",
        *COMMON,
    ]
    assert main(["train", "-c", str(CONFIGS / "condinst_coco.yaml"), *overrides]) == 0
    evaluations = finished_run(tmp_path / "runs" / "condinst_coco")
    assert evaluations[-1]["num_images"] == 2
