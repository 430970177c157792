"""The instance demo's quick run: its run folder, its COCO files and scores."""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.demo_runs import QuickRun, run_quick
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fcnlab.config import config_to_dict, load_config
from fcnlab.data import Shapes
from fcnlab.demos.instance import (
    FULL_PLAN,
    MODELS,
    QUICK_PLAN,
    RUN_NAME,
    instance_config,
    run_instance_demo,
)
from fcnlab.tasks import task_of_model_name

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KINDS = ["disk", "square", "triangle", "ring", "bar"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    return run_quick(run_instance_demo, tmp_path_factory.mktemp("demo"), RUN_NAME)


@pytest.fixture(scope="module")
def quick_run(quick: QuickRun) -> Path:
    return quick.run_dir


def metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


def cocoeval_stats(run: Path, results: str, iou_type: str) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(run / "ground_truth.json"))
        evaluator = COCOeval(truth, truth.loadRes(str(run / results)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_quick_instance_demo_writes_the_run_folder(quick_run: Path) -> None:
    for name in ("metrics.json", "metrics.jsonl", "config.yaml", "curves.png", "instances.png",
                 "pr_curve.png", "instances.json", "detections.json", "ground_truth.json",
                 "final.safetensors", "checkpoints/last.pt"):  # fmt: skip
        assert (quick_run / name).is_file(), name


def test_metrics_json_holds_mask_and_box_stats_and_per_class_ap(quick_run: Path) -> None:
    found = metrics(quick_run)
    for kind in ("mask", "box"):
        for key in COCO_KEYS:
            value = found[f"{kind}_{key}"]
            assert value is None or 0.0 <= value <= 1.0, (kind, key)
    assert found["classes"] == KINDS
    for key in ("per_class_mask_ap", "per_class_mask_ap50", "per_class_box_ap"):
        assert list(found[key]) == KINDS, key
    assert found["held_out_images"] == QUICK_PLAN.val_images and found["quick"] is True


def test_ground_truth_json_holds_the_held_out_shapes_masks(quick_run: Path) -> None:
    plan = QUICK_PLAN
    shapes = Shapes(plan.val_images, plan.size, plan.seed, plan.num_classes, split="val",
                    target="instances", shapes_per_image=plan.shapes_per_image,
                    scale=plan.scale, texture=plan.texture, touching=plan.touching)  # fmt: skip
    truth = json.loads((quick_run / "ground_truth.json").read_text())
    assert [c["name"] for c in truth["categories"]] == KINDS
    for index in range(plan.val_images):
        _, target = shapes[index]
        mine = [a for a in truth["annotations"] if a["image_id"] == index]
        decoded = [mask_utils.decode(a["segmentation"]).astype(bool) for a in mine]
        assert len(decoded) == len(target["masks"])
        for mask, expected, annotation in zip(decoded, target["masks"], mine, strict=True):
            assert np.array_equal(mask, expected.numpy())
            assert annotation["area"] == int(expected.sum())
        # COCO's category ids count from 1, fcnlab's labels from 0.
        assert [a["category_id"] - 1 for a in mine] == target["labels"].tolist()


def test_mask_results_carry_no_box(quick_run: Path) -> None:
    results = json.loads((quick_run / "instances.json").read_text())
    assert results and all("bbox" not in r and "segmentation" in r for r in results)


def test_scores_are_cocoeval_on_the_written_files_and_the_engines(quick_run: Path) -> None:
    found = metrics(quick_run)
    for kind, results, iou_type in (("mask", "instances.json", "segm"),
                                    ("box", "detections.json", "bbox")):  # fmt: skip
        stats = cocoeval_stats(quick_run, results, iou_type)
        for key, value in zip(COCO_KEYS, stats, strict=True):
            mine = found[f"{kind}_{key}"]
            assert mine is None if value < 0 else math.isclose(mine, value), (kind, key)
    # The quick run learns enough to find some shapes, so the comparison is not one of zeros.
    assert found["box_AP50"] > 0 and found["mask_AP50"] > 0
    # The engine's own evaluation of the final model, its last metrics.jsonl line, agrees.
    lines = (quick_run / "metrics.jsonl").read_text().splitlines()
    last = [r for r in map(json.loads, lines) if r["kind"] == "eval"][-1]
    assert math.isclose(last["mask_AP"], found["mask_AP"])
    assert math.isclose(last["box_AP"], found["box_AP"])


def test_run_returns_what_metrics_json_holds_and_prints_the_tables(quick: QuickRun) -> None:
    summary, printed = quick.summary, quick.printed
    assert metrics(quick.run_dir) == summary
    assert "mask (segm)" in printed and "box (bbox)" in printed
    assert (
        printed.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") == 2
    )
    assert "Held-out Shapes images: COCO mask and box AP" in printed
    assert f"{100 * summary['mask_AP50']:.1f}" in printed
    finished = f"instance segmentation demo (CondInst) finished in {summary['seconds']:.0f} s."
    assert finished in printed


def test_the_demo_trains_a_model_of_the_task_it_is_registered_under() -> None:
    for name in MODELS:
        model = instance_config(replace(FULL_PLAN, model=name), "runs").model.name
        assert model == name and task_of_model_name(model).name == "instance"


def test_each_model_has_its_run_folder_and_its_shipped_recipe() -> None:
    configs = Path(__file__).parents[2] / "configs"
    folders = set()
    for name in MODELS:
        demo = instance_config(replace(FULL_PLAN, model=name), "runs")
        folders.add(demo.run_dir)
        shipped = config_to_dict(load_config(configs / f"{name}_shapes.yaml"))
        for section in ("model", "data", "train", "stages", "eval"):
            assert shipped[section] == config_to_dict(demo)[section], (name, section)
    assert folders == {Path("runs/demo_instance"), Path("runs/demo_instance_solov2")}


def test_an_unknown_model_is_refused() -> None:
    with pytest.raises(ValueError, match="trains condinst or solov2, not 'fcos'"):
        instance_config(replace(FULL_PLAN, model="fcos"), "runs")
