"""``fcnlab demo --task instance``: CondInst learns a separate mask for every shape of Shapes.

The third fully convolutional problem on the same built-in data as the other demos, in the
instance view of Shapes: touching shapes of one class are common, so one region of the class map
is two objects here. CondInst on a narrow VGG-16 encoder (FCOS finds the shapes; each location's
own three-layer mask head, whose weights a controller predicts, draws its mask on shared mask
features), trained by the engine from random initialisation in one stage with everything
trainable. The held-out images are scored with pycocotools' ``COCOeval`` for masks (``segm``)
and boxes (``bbox``); the run folder gets the scores (``metrics.json``), the ground truth and
the predictions in COCO's JSON formats (masks as RLE), and the engine's pictures.
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
from fcnlab.tasks.detection.coco_eval import COCO_METRICS, detections_to_coco, to_coco
from fcnlab.tasks.instance.evaluate import (
    InstanceEvalResult,
    InstanceEvaluator,
    segment_instances,
)
from fcnlab.tasks.instance.report import summaries

RUN_NAME = "demo_instance"
#: The models the demo trains (``fcnlab demo --task instance --model NAME``), the default first.
MODELS = ("condinst", "solov2")
NAMES = {"condinst": "CondInst", "solov2": "SOLOv2"}
# What each model does, for the heading of a run.
HOW = {
    "condinst": "FCOS boxes and a dynamic mask head per shape",
    "solov2": "grid cells, dynamic kernels and Matrix NMS",
}
# SOLOv2's grids and size ranges scaled to 80-pixel images holding shapes of 20-64 pixels: the
# paper's ranges / 4 and grids of 12-4 cells (its 40-12 on ~1000-pixel images), so that an object
# spans 3-6 cells of its level's grid, as in the paper.
SOLOV2_GRIDS = (12, 10, 8, 6, 4)
SOLOV2_SCALE_RANGES = ((1, 24), (12, 48), (24, 96), (48, 192), (96, 512))


@dataclass(frozen=True)
class InstancePlan(ShapesPlan):
    """Sizes and lengths of the instance demo; ``QUICK_PLAN`` is the test version.

    The Shapes knobs are :class:`fcnlab.demos.common.ShapesPlan`'s, the other demos' images,
    with up to three shapes per image, half of those after the first placed against an earlier
    shape of their class (``touching``).
    """

    model: str = "condinst"
    train_images: int = 2048
    num_classes: int = 5
    shapes_per_image: tuple[int, int] = (1, 3)
    touching: float = 0.5
    fpn_channels: int = 32
    head_depth: int = 2
    mask_branch_channels: int = 32
    mask_branch_depth: int = 2
    solov2_head_channels: int = 64
    epochs: int = 12
    lr: float = 3e-3
    warmup_steps: int = 50
    eval_every: int = 4


FULL_PLAN = InstancePlan()
# Enough steps for a few masks to be found, so that the quick run's scores are not all 0.
QUICK_PLAN = replace(
    FULL_PLAN,
    size=48,
    train_images=128,
    val_images=16,
    epochs=3,
    batch_size=8,
    warmup_steps=5,
)


def run_name(model: str) -> str:
    """The demo's run folder for ``model``: ``demo_instance``, ``demo_instance_solov2``."""
    return RUN_NAME if model == MODELS[0] else f"{RUN_NAME}_{model}"


def model_options(plan: InstancePlan) -> dict[str, Any]:
    """The options of ``plan.model``'s builder: narrow pyramid, heads and mask branch."""
    if plan.model == "condinst":
        return {
            "fpn_channels": plan.fpn_channels,
            "head_depth": plan.head_depth,
            "mask_branch_channels": plan.mask_branch_channels,
            "mask_branch_depth": plan.mask_branch_depth,
        }
    if plan.model == "solov2":
        return {
            "fpn_channels": plan.fpn_channels,
            "head_channels": plan.solov2_head_channels,
            "head_depth": plan.head_depth,
            "mask_channels": plan.mask_branch_channels,
            "mask_branch_channels": plan.mask_branch_channels,
            "num_grids": list(SOLOV2_GRIDS),
            "scale_ranges": [list(r) for r in SOLOV2_SCALE_RANGES],
        }
    raise ValueError(f"the instance demo trains {' or '.join(MODELS)}, not {plan.model!r}")


def instance_config(plan: InstancePlan, output_root: str) -> Config:
    """The demo as an engine configuration (``configs/condinst_shapes.yaml`` and
    ``configs/solov2_shapes.yaml`` are the full ones)."""
    return shapes_config(
        plan,
        output_root,
        run_name(plan.model),
        model=vgg_model_config(plan, plan.model, plan.num_classes, **model_options(plan)),
        data_options={
            "num_images": plan.train_images,
            "num_classes": plan.num_classes,
            "touching": plan.touching,
            **shapes_options(plan),
        },
        stages=[StageConfig(name="train", epochs=plan.epochs, encoder="trainable", lr=plan.lr)],
        warmup_steps=plan.warmup_steps,
        eval_every=plan.eval_every,
    )


def held_out_instances(
    model: nn.Module, dataset: Dataset, classes: Sequence[str], batch_size: int = 64
) -> tuple[InstanceEvalResult, list[dict[str, Any]], list[dict[str, Any]]]:
    """COCOeval of ``model``'s masks and boxes on every image of ``dataset`` (the instance
    task's evaluator) and what it measured: the ground-truth records and the predictions, both
    in the images' stored frame with masks as RLEs, which the COCO JSON files are written from."""
    evaluator = InstanceEvaluator(len(classes), classes)
    loader = DataLoader(dataset, batch_size, collate_fn=detection_collate)
    result = run_evaluation(
        model, loader, evaluator, lambda images: segment_instances(model, images)
    )
    assert isinstance(result, InstanceEvalResult)
    return result, evaluator.records, evaluator.found


def summarise(result: InstanceEvalResult, classes: Sequence[str]) -> dict[str, Any]:
    """COCO's 12 numbers for masks ("mask_AP", ...) and boxes ("box_AP", ...) at the top level,
    mask AP and AP50 and box AP per class (by name)."""
    summary: dict[str, Any] = {
        f"{kind}_{key}": stats[key]
        for kind, stats in (("mask", result.mask_stats), ("box", result.box_stats))
        for key in COCO_METRICS
    }
    for key, values in (
        ("per_class_mask_ap", result.per_class_mask_ap),
        ("per_class_mask_ap50", result.per_class_mask_ap50),
        ("per_class_box_ap", result.per_class_box_ap),
    ):
        summary[key] = dict(zip(classes, values, strict=True))
    return summary


def run_instance_demo(
    quick: bool = False,
    output_root: str = "runs",
    console: Console | None = None,
    progress: bool | None = None,
    plan: InstancePlan | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` (CondInst by default, or SOLOv2) on Shapes' instances through the engine
    and score the held-out images (``plan`` overrides the full or quick plan); returns what
    ``runs/demo_instance[_MODEL]/metrics.json`` holds."""
    run = DemoRun.start(quick, console, progress)
    plan = run.plan(plan, FULL_PLAN, QUICK_PLAN)
    if model is not None:
        plan = replace(plan, model=model)

    config = instance_config(plan, output_root)
    # The initial weights are drawn from the plan's seed too, so that a run repeats.
    torch.manual_seed(plan.seed)
    model = build_model_from_config(config.model)
    val_set = build_split(config.data, config.data.val_split, train=False, task=task_of(model).name)
    run.console.rule(
        f"[bold]{NAMES[plan.model]} ({plan.encoder} at {plan.width}x width, random init) on "
        f"{plan.size}x{plan.size} Shapes: {HOW[plan.model]}"
    )
    result = run.train(config, model, val_set=val_set)

    run_dir = result.run_dir
    classes = class_names(val_set, plan.num_classes)
    evaluation, records, found = held_out_instances(model, val_set, classes)
    ground_truth = to_coco(records, classes)
    write_json(run_dir / "ground_truth.json", ground_truth)
    image_ids = [image["id"] for image in ground_truth["images"]]
    write_json(run_dir / "instances.json", detections_to_coco(found, image_ids, iou_type="segm"))
    write_json(run_dir / "detections.json", detections_to_coco(found, image_ids))

    summary: dict[str, Any] = {
        **summarise(evaluation, classes),
        "model": plan.model,
        "classes": classes,
        "held_out_images": len(records),
        "train_images": plan.train_images,
        "image_size": plan.size,
    }
    return run.finish(
        run_dir,
        summary,
        [*summaries(evaluation), results_table(summary)],
        what=f"instance segmentation demo ({NAMES[plan.model]})",
        files="curves.png, instances.png (image | ground truth | prediction), pr_curve.png, "
        "ground_truth.json, instances.json (masks as RLE) and detections.json (boxes), "
        "in COCO's formats",
        next_step=f"`fcnlab eval -c {run_dir}/config.yaml --checkpoint "
        f"{run_dir}/final.safetensors` or `fcnlab predict --checkpoint "
        f"{run_dir}/final.safetensors IMAGES --out OUT`",
    )


def results_table(summary: dict[str, Any]) -> Table:
    """Held-out COCO mask AP, mask AP50 and box AP (%) from a ``metrics.json`` summary: all
    classes, then each class."""
    rows = [
        ["all", *(percent(summary[key]) for key in ("mask_AP", "mask_AP50", "mask_AP75", "box_AP"))]
    ]
    for name in summary["classes"]:
        rows.append(
            [
                name,
                percent(summary["per_class_mask_ap"][name]),
                percent(summary["per_class_mask_ap50"][name]),
                "",
                percent(summary["per_class_box_ap"][name]),
            ]
        )
    return demo_table(
        "Held-out Shapes images: COCO mask and box AP (%)",
        ("class", "mask AP", "mask AP50", "mask AP75", "box AP"),
        rows,
    )


@DEMOS.register("instance")
def instance_demo() -> Demo:
    """``fcnlab demo --task instance``: CondInst segments each shape separately."""
    return Demo(
        run=run_instance_demo,
        run_name=RUN_NAME,
        summary="CondInst (or SOLOv2) segments every shape separately",
        description="train CondInst (--model solov2: SOLOv2) to give each shape its own mask and "
        "report held-out COCO mask AP and box AP.",
        models=MODELS,
    )
