"""The detection demo's quick run: its run folder, its COCO files and scores."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers.demo_runs import QuickRun, run_quick
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from fcnlab.data import Shapes
from fcnlab.demos.detection import (
    FULL_PLAN,
    QUICK_PLAN,
    RUN_NAME,
    detection_config,
    run_detection_demo,
)
from fcnlab.tasks import task_of_model_name

COCO_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KINDS = ["disk", "square", "triangle", "ring", "bar"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    return run_quick(run_detection_demo, tmp_path_factory.mktemp("demo"), RUN_NAME)


@pytest.fixture(scope="module")
def quick_run(quick: QuickRun) -> Path:
    return quick.run_dir


def metrics(run: Path) -> dict[str, Any]:
    return json.loads((run / "metrics.json").read_text())


def test_quick_detection_demo_writes_the_run_folder(quick_run: Path) -> None:
    for name in ("metrics.json", "metrics.jsonl", "config.yaml", "curves.png", "detections.png",
                 "pr_curve.png", "detections.json", "ground_truth.json", "final.safetensors",
                 "checkpoints/last.pt"):  # fmt: skip
        assert (quick_run / name).is_file(), name


def test_metrics_json_holds_coco_stats_and_per_class_ap(quick_run: Path) -> None:
    found = metrics(quick_run)
    for key in COCO_KEYS:
        assert found[key] is None or 0.0 <= found[key] <= 1.0, key
    assert found["classes"] == KINDS
    for key in ("per_class_ap", "per_class_ap50", "per_class_ap75"):
        assert list(found[key]) == KINDS, key
        assert all(v is None or 0.0 <= v <= 1.0 for v in found[key].values()), key
    assert found["held_out_images"] == QUICK_PLAN.val_images
    assert found["quick"] is True


def test_ground_truth_json_is_the_held_out_shapes_boxes(quick_run: Path) -> None:
    plan = QUICK_PLAN
    shapes = Shapes(plan.val_images, plan.size, plan.seed, plan.num_classes, split="val",
                    target="boxes", shapes_per_image=plan.shapes_per_image, scale=plan.scale,
                    texture=plan.texture)  # fmt: skip
    truth = json.loads((quick_run / "ground_truth.json").read_text())
    assert [c["name"] for c in truth["categories"]] == KINDS
    for index in range(plan.val_images):
        expected = shapes.instances(index)
        mine = [a for a in truth["annotations"] if a["image_id"] == index]
        # COCO's boxes are [x, y, width, height]; Shapes' are pixel edges (x1, y1, x2, y2).
        xywh = [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in expected["boxes"].tolist()]
        assert [a["bbox"] for a in mine] == xywh
        # Shapes' labels count from 1 (0 is the background), like COCO's category ids.
        assert [a["category_id"] for a in mine] == expected["labels"].tolist()


def test_scores_are_cocoeval_on_the_written_files_and_the_engines(quick_run: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(quick_run / "ground_truth.json"))
        evaluator = COCOeval(truth, truth.loadRes(str(quick_run / "detections.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    found = metrics(quick_run)
    for key, value in zip(COCO_KEYS, evaluator.stats, strict=True):
        assert found[key] is None if value < 0 else math.isclose(found[key], value), key
    # The quick run learns enough to find some shapes, so the comparison is not one of zeros.
    assert found["AP50"] > 0
    # The engine's own evaluation of the final model, its last metrics.jsonl line, agrees.
    lines = (quick_run / "metrics.jsonl").read_text().splitlines()
    last = [r for r in map(json.loads, lines) if r["kind"] == "eval"][-1]
    assert math.isclose(last["AP"], found["AP"]) and math.isclose(last["AP50"], found["AP50"])


def test_run_returns_what_metrics_json_holds_and_prints_the_tables(quick: QuickRun) -> None:
    summary, printed = quick.summary, quick.printed
    assert metrics(quick.run_dir) == summary
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in printed
    assert "Held-out Shapes images: COCO box" in printed  # the title wraps at the table width
    assert f"{100 * summary['AP50']:.1f}" in printed
    assert f"detection demo finished in {summary['seconds']:.0f} s." in printed


def test_the_demo_trains_a_model_of_the_task_it_is_registered_under() -> None:
    # The demo asks the model's task for its box targets; it is the name it is registered under.
    model = detection_config(FULL_PLAN, "runs").model.name
    assert task_of_model_name(model).name == "detection"
