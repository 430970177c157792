"""``fcnlab demo --task detection``: CenterNet learns to find the shapes of the Shapes set.

The second fully convolutional problem on the same built-in data as the segmentation demo: a
narrow VGG-16 encoder, CenterNet's up-convolution decoder to stride 4 and its three heads
(class heatmap, box size, centre offset), trained by the engine from random initialisation in
one stage with everything trainable (the segmentation demo's frozen stage works on a trained
classifier's encoder; here a frozen encoder would be a random one). The held-out images are
scored with pycocotools' ``COCOeval``; the run folder gets the scores (``metrics.json``), the
detections and ground truth in COCO's JSON formats, and the engine's pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fcnlab.config import Config, StageConfig
from fcnlab.data import detection_collate
from fcnlab.demos.common import (
    DemoRun,
    ShapesPlan,
    demo_table,
    percent,
    shapes_config,
    shapes_options,
    vgg_model_config,
    write_json,
)
from fcnlab.demos.registry import DEMOS, Demo
from fcnlab.engine.build import build_split
from fcnlab.models.from_config import build_model_from_config
from fcnlab.tasks import class_names, run_evaluation, task_of
from fcnlab.tasks.detection.coco_eval import (
    COCO_METRICS,
    CocoEvaluation,
    detections_to_coco,
    to_coco,
)
from fcnlab.tasks.detection.evaluate import DetectionEvalResult, DetectionEvaluator, detect

RUN_NAME = "demo_detection"


@dataclass(frozen=True)
class DetectionPlan(ShapesPlan):
    """Sizes and lengths of the detection demo; ``QUICK_PLAN`` is the test version.

    The Shapes knobs are :class:`fcnlab.demos.common.ShapesPlan`'s, the segmentation demo's
    images.
    """

    train_images: int = 2048
    num_classes: int = 5
    decoder_channels: tuple[int, ...] = (64, 32, 32)
    head_channels: int = 32
    epochs: int = 15
    lr: float = 3e-3
    warmup_steps: int = 50
    eval_every: int = 5


FULL_PLAN = DetectionPlan()
# Enough steps to find a few shapes (AP50 ~0.1), so that the quick run's scores are not all 0.
QUICK_PLAN = replace(
    FULL_PLAN,
    size=48,
    train_images=128,
    val_images=16,
    epochs=3,
    batch_size=8,
    warmup_steps=5,
)


def detection_config(plan: DetectionPlan, output_root: str) -> Config:
    """The demo as an engine configuration (``configs/centernet_shapes.yaml`` is the full one)."""
    return shapes_config(
        plan,
        output_root,
        RUN_NAME,
        model=vgg_model_config(
            plan,
            "centernet",
            plan.num_classes,
            decoder_channels=list(plan.decoder_channels),
            head_channels=plan.head_channels,
        ),
        data_options={
            "num_images": plan.train_images,
            "num_classes": plan.num_classes,
            **shapes_options(plan),
        },
        stages=[StageConfig(name="train", epochs=plan.epochs, encoder="trainable", lr=plan.lr)],
        warmup_steps=plan.warmup_steps,
        eval_every=plan.eval_every,
    )


def held_out_detections(
    model: nn.Module, dataset: Dataset, classes: Sequence[str], batch_size: int = 64
) -> tuple[CocoEvaluation, list[dict[str, Any]], list[dict[str, torch.Tensor]]]:
    """COCOeval of ``model`` on every image of ``dataset`` (the detection task's evaluator) and
    what it measured: the ground-truth records and the detections, both in the images' stored
    frame, which the COCO JSON files are written from."""
    evaluator = DetectionEvaluator(len(classes), classes)
    loader = DataLoader(dataset, batch_size, collate_fn=detection_collate)
    result = run_evaluation(model, loader, evaluator, lambda images: detect(model, images))
    assert isinstance(result, DetectionEvalResult) and result.coco is not None
    return result.coco, evaluator.records, evaluator.found


def summarise(evaluation: CocoEvaluation, classes: Sequence[str]) -> dict[str, Any]:
    """The 12 COCO numbers at the top level and AP, AP50, AP75 per class (by name)."""
    per_class = {
        key: dict(zip(classes, evaluation.class_ap(iou), strict=True))
        for key, iou in (("per_class_ap", None), ("per_class_ap50", 0.5), ("per_class_ap75", 0.75))
    }
    return {**{key: evaluation.stats[key] for key in COCO_METRICS}, **per_class}


def run_detection_demo(
    quick: bool = False,
    output_root: str = "runs",
    console: Console | None = None,
    progress: bool | None = None,
    plan: DetectionPlan | None = None,
) -> dict[str, Any]:
    """Train CenterNet on Shapes through the engine and score the held-out images (``plan``
    overrides the full or quick plan); returns what ``runs/demo_detection/metrics.json`` holds."""
    run = DemoRun.start(quick, console, progress)
    plan = run.plan(plan, FULL_PLAN, QUICK_PLAN)

    config = detection_config(plan, output_root)
    model = build_model_from_config(config.model)
    data = config.data
    val_set = build_split(data, data.val_split, train=False, task=task_of(model).name)
    run.console.rule(
        f"[bold]CenterNet ({plan.encoder} at {plan.width}x width, random init) on "
        f"{plan.size}x{plan.size} Shapes: heatmap peaks, sizes and offsets"
    )
    result = run.train(config, model, val_set=val_set)

    run_dir = result.run_dir
    classes = class_names(val_set, plan.num_classes)
    evaluation, records, found = held_out_detections(model, val_set, classes)
    ground_truth = to_coco(records, classes)
    write_json(run_dir / "ground_truth.json", ground_truth)
    image_ids = [image["id"] for image in ground_truth["images"]]
    write_json(run_dir / "detections.json", detections_to_coco(found, image_ids))

    summary: dict[str, Any] = {
        **summarise(evaluation, classes),
        "classes": classes,
        "held_out_images": len(records),
        "train_images": plan.train_images,
        "image_size": plan.size,
    }
    return run.finish(
        run_dir,
        summary,
        [evaluation.summary, results_table(summary)],
        what="detection demo",
        files="curves.png, detections.png (ground truth | prediction), pr_curve.png, "
        "detections.json and ground_truth.json (COCO formats)",
        next_step=f"`fcnlab eval -c {run_dir}/config.yaml --checkpoint "
        f"{run_dir}/final.safetensors` or `fcnlab predict --checkpoint "
        f"{run_dir}/final.safetensors IMAGES --out OUT`",
    )


def results_table(summary: dict[str, Any]) -> Table:
    """Held-out COCO AP, AP50 and AP75 (%) from a ``metrics.json`` summary: all classes, then
    each class."""
    keys = ("AP", "AP50", "AP75")
    rows = [["all", *(percent(summary[key]) for key in keys)]]
    for name in summary["classes"]:
        rows.append([name, *(percent(summary[f"per_class_{key.lower()}"][name]) for key in keys)])
    return demo_table("Held-out Shapes images: COCO box AP (%)", ("class", *keys), rows)


@DEMOS.register("detection")
def detection_demo() -> Demo:
    """``fcnlab demo --task detection``: CenterNet finds the shapes' boxes."""
    return Demo(
        run=run_detection_demo,
        run_name=RUN_NAME,
        summary="CenterNet finds the shapes' boxes",
        description="train CenterNet to find the shapes' boxes and report held-out COCO AP.",
    )
