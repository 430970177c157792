"""The shipped Shapes detection configs: `centernet_shapes` is the detection demo's recipe, and
both train through `fcnlab train -c configs/...` with only sizes and lengths shrunk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fcnlab.cli.main import main
from fcnlab.config import config_to_dict, load_config
from fcnlab.demos.detection import FULL_PLAN, detection_config

CONFIGS = Path(__file__).parents[1] / "configs"
# Two steps of batch 2 on 48x48 images; model, data knobs, optimiser and schedule are the
# config's own.
SHRINK = [
    "data.options.num_images=4",
    "data.options.size=48",
    "data.val_options.num_images=2",
    "data.transforms.crop_size=48",
    "train.batch_size=2",
    "train.warmup_steps=1",
    "train.log_every=1",
    "eval.num_overlays=1",
    "output.tensorboard=false",
]
LENGTHS = {
    "centernet_shapes": ["stages.0.epochs=1"],
    "fcos_shapes": ["stages.0.iterations=2", "train.milestones=[1]"],
}


def test_centernet_shapes_is_the_detection_demo_recipe() -> None:
    shipped = config_to_dict(load_config(CONFIGS / "centernet_shapes.yaml"))
    demo = config_to_dict(detection_config(FULL_PLAN, "runs"))
    for section in ("model", "data", "train", "stages", "eval"):
        assert shipped[section] == demo[section], section


@pytest.mark.parametrize("name", sorted(LENGTHS))
def test_shapes_detection_config_trains_two_steps_and_evaluates(tmp_path: Path, name: str) -> None:
    overrides = [f"output.root={tmp_path}", *SHRINK, *LENGTHS[name]]
    assert main(["train", "-c", str(CONFIGS / f"{name}.yaml"), *overrides]) == 0

    run = tmp_path / name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    evaluations = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in steps] == [1, 2]
    assert evaluations and evaluations[-1]["task"] == "detection"
    assert evaluations[-1]["num_images"] == 2
    assert all(r["AP"] is None or 0.0 <= r["AP"] <= 1.0 for r in evaluations)
    for file in ("final.safetensors", "curves.png", "detections.png", "checkpoints/last.pt"):
        assert (run / file).is_file(), file
