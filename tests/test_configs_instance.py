"""The shipped instance segmentation configs (CondInst and SOLOv2) train through
`fcnlab train -c configs/...` with only sizes and lengths shrunk: `*_shapes` on the built-in
Shapes instances, `*_coco` on a COCO-format instances file written in the real on-disk format.
(That the `*_shapes` configs are the instance demo's recipes is checked with the demo.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.fixtures import compressed_rle, rectangle_polygon, write_coco

from fcnlab.cli.main import main
from fcnlab.config import load_config
from fcnlab.models import model_task

CONFIGS = Path(__file__).parents[1] / "configs"
MODELS = ("condinst", "solov2")
COMMON = [
    "train.batch_size=2",
    "train.warmup_steps=1",
    "train.log_every=1",
    "eval.batch_size=2",
    "eval.num_overlays=1",
    "output.tensorboard=false",
]
# SOLOv2's heads cost what their grids do (3872 cells of 512-channel convolutions), whatever the
# image size: narrowed for a CPU test.
NARROW = {"condinst": [], "solov2": ["model.options.head_channels=64"]}


def finished_run(run: Path) -> list[dict[str, Any]]:
    """The run's evaluation records, after checking the files every instance run writes."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for name in ("final.safetensors", "curves.png", "instances.png", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert all(np.isfinite(r["loss"]) for r in records if r["kind"] == "train")
    evaluations = [r for r in records if r["kind"] == "eval"]
    assert evaluations and all(r["task"] == "instance" for r in evaluations)
    for record in evaluations:
        for key in ("mask_AP", "mask_AP50", "box_AP"):
            assert record[key] is None or 0.0 <= record[key] <= 1.0, key
    return evaluations


@pytest.mark.parametrize("model", MODELS)
def test_configs_name_their_model_for_the_instance_task(model: str) -> None:
    for name, classes in ((f"{model}_shapes", 5), (f"{model}_coco", 80)):
        config = load_config(CONFIGS / f"{name}.yaml")
        assert config.model.name == model and config.model.num_classes == classes
        assert model_task(config.model.name) == "instance"
        assert config.run_dir == Path("runs") / name


def test_coco_configs_follow_the_papers_1x_schedules() -> None:
    condinst = load_config(CONFIGS / "condinst_coco.yaml")
    assert condinst.stages[0].iterations == 90_000 and condinst.stages[0].lr == 0.01
    assert condinst.train.milestones == [60_000, 80_000]
    # The SOLOv2 authors' 1x: lr 0.01 dropped at 9/12 and 11/12 of the schedule, clipping at 35.
    solov2 = load_config(CONFIGS / "solov2_coco.yaml")
    assert solov2.stages[0].iterations == 90_000 and solov2.stages[0].lr == 0.01
    assert solov2.train.milestones == [67_500, 82_500] and solov2.train.clip_grad_norm == 35.0


@pytest.mark.parametrize("model", MODELS)
def test_shapes_config_trains_two_steps_and_evaluates(tmp_path: Path, model: str) -> None:
    overrides = [
        f"output.root={tmp_path}",
        "data.options.num_images=4",
        "data.options.size=64",
        "data.val_options.num_images=2",
        "data.transforms.crop_size=64",
        "stages.0.epochs=1",
        *COMMON,
    ]
    assert main(["train", "-c", str(CONFIGS / f"{model}_shapes.yaml"), *overrides]) == 0
    evaluations = finished_run(tmp_path / f"{model}_shapes")
    assert evaluations[-1]["num_images"] == 2


def coco_instances(root: Path) -> Path:
    """Two splits of two 64 x 80 images, each with a polygon cat, an RLE car with a window cut
    out of it, and a crowd of cars (RLE, iscrowd 1) that the models leave out of their targets."""
    car = np.zeros((64, 80), dtype=bool)
    car[24:56, 36:76] = True
    car[30:38, 44:60] = False
    crowd = np.zeros((64, 80), dtype=bool)
    crowd[0:12, 40:80] = True
    for split, first in (("train", 1), ("val", 20)):
        images = [
            {"id": first + i, "file_name": f"{first + i:012d}.jpg", "height": 64, "width": 80}
            for i in range(2)
        ]
        annotations = [
            annotation
            for image in images
            for annotation in (
                {"image_id": image["id"], "category_id": 17,
                 "segmentation": rectangle_polygon(8, 4, 44, 32)},
                {"image_id": image["id"], "category_id": 3, "segmentation": compressed_rle(car),
                 "iscrowd": 0},
                {"image_id": image["id"], "category_id": 3, "segmentation": compressed_rle(crowd),
                 "iscrowd": 1},
            )
        ]  # fmt: skip
        write_coco(root, split, images, annotations, {3: "car", 17: "cat"})
    return root


@pytest.mark.parametrize("model", MODELS)
def test_coco_config_trains_and_evaluates_on_a_coco_instances_file(
    tmp_path: Path, model: str
) -> None:
    root = coco_instances(tmp_path / "data")
    overrides = [
        f"data.root={root}",
        f"output.root={tmp_path / 'runs'}",
        "model.encoder_weights=null",
        *NARROW[model],
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
    assert main(["train", "-c", str(CONFIGS / f"{model}_coco.yaml"), *overrides]) == 0
    evaluations = finished_run(tmp_path / "runs" / f"{model}_coco")
    assert evaluations[-1]["num_images"] == 2
