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

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fcnlab.config import (
    Config,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OutputConfig,
    StageConfig,
    TrainConfig,
    TransformConfig,
)
from fcnlab.data import detection_collate
from fcnlab.demo import ShapesPlan, shapes_options
from fcnlab.detection_eval import (
    COCO_METRICS,
    CocoEvaluation,
    coco_evaluate,
    detections_to_coco,
    to_coco,
)
from fcnlab.engine import train
from fcnlab.engine.build import build_model_from_config, build_split
from fcnlab.engine.detection_evaluate import detect, to_original_frame
from fcnlab.runtime.checkpoint import atomic_write
from fcnlab.runtime.records import json_safe

RUN_NAME = "demo_detection"


@dataclass(frozen=True)
class DetectionPlan(ShapesPlan):
    """Sizes and lengths of the detection demo; ``QUICK_DETECTION_PLAN`` is the test version.

    The Shapes knobs are :class:`fcnlab.demo.ShapesPlan`'s, the segmentation demo's images.
    """

    train_images: int = 2048
    val_images: int = 256
    num_classes: int = 5
    encoder: str = "vgg16_bn"
    width: float = 0.125
    decoder_channels: tuple[int, ...] = (64, 32, 32)
    head_channels: int = 32
    epochs: int = 15
    lr: float = 3e-3
    warmup_steps: int = 50
    batch_size: int = 32
    eval_every: int = 5


FULL_DETECTION_PLAN = DetectionPlan()
# Enough steps to find a few shapes (AP50 ~0.1), so that the quick run's scores are not all 0.
QUICK_DETECTION_PLAN = replace(
    FULL_DETECTION_PLAN,
    size=48,
    train_images=128,
    val_images=16,
    epochs=3,
    batch_size=8,
    warmup_steps=5,
)


def detection_config(plan: DetectionPlan, output_root: str, name: str = RUN_NAME) -> Config:
    """The demo as an engine configuration (``configs/centernet_shapes.yaml`` is the full one)."""
    return Config(
        model=ModelConfig(
            name="centernet",
            num_classes=plan.num_classes,
            encoder=plan.encoder,
            options={
                "encoder_options": {"width": plan.width},
                "decoder_channels": list(plan.decoder_channels),
                "head_channels": plan.head_channels,
            },
        ),
        data=DataConfig(
            name="shapes",
            options={
                "num_images": plan.train_images,
                "num_classes": plan.num_classes,
                **shapes_options(plan),
            },
            val_options={"num_images": plan.val_images},
            transforms=TransformConfig(crop_size=plan.size, scale_range=[1.0, 1.0], flip=0.5),
        ),
        train=TrainConfig(
            optimizer="adamw",
            weight_decay=1e-4,
            schedule="cosine",
            warmup_steps=plan.warmup_steps,
            batch_size=plan.batch_size,
            seed=plan.seed,
            log_every=16,
        ),
        stages=[StageConfig(name="train", epochs=plan.epochs, encoder="trainable", lr=plan.lr)],
        eval=EvalConfig(every_epochs=plan.eval_every, batch_size=64, num_overlays=6),
        output=OutputConfig(root=output_root, name=name, tensorboard=False),
    )


def held_out_detections(
    model: nn.Module, dataset: Dataset, batch_size: int = 64
) -> tuple[list[dict[str, Any]], list[dict[str, torch.Tensor]]]:
    """Ground-truth records and ``model``'s detections for every image of ``dataset``, both in
    the images' stored frame (what the engine's evaluation scores); ``model`` is left in eval
    mode."""
    model.eval()
    records, found = [], []
    loader = DataLoader(dataset, batch_size, collate_fn=detection_collate)
    for images, targets in loader:
        for target, detection in zip(targets, detect(model, images), strict=True):
            record, mapped = to_original_frame(target, detection)
            records.append(record)
            found.append(mapped)
    return records, found


def write_json(path: Path, data: Any) -> None:
    """``data`` as JSON at ``path``, written atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=1).encode()))


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
    console = console or Console()
    plan = plan or (QUICK_DETECTION_PLAN if quick else FULL_DETECTION_PLAN)
    started = time.perf_counter()
    show = console.is_terminal if progress is None else progress

    config = detection_config(plan, output_root)
    model = build_model_from_config(config.model)
    val_set = build_split(config.data, config.data.val_split, train=False, task="detection")
    console.rule(
        f"[bold]CenterNet ({plan.encoder} at {plan.width}x width, random init) on "
        f"{plan.size}x{plan.size} Shapes: heatmap peaks, sizes and offsets"
    )
    result = train(config, model=model, val_set=val_set, console=console, progress=show)

    records, found = held_out_detections(model, val_set)
    classes = list(val_set.classes)  # type: ignore[attr-defined]
    ground_truth = to_coco(records, classes)
    write_json(result.run_dir / "ground_truth.json", ground_truth)
    image_ids = [image["id"] for image in ground_truth["images"]]
    write_json(result.run_dir / "detections.json", detections_to_coco(found, image_ids))
    evaluation = coco_evaluate(records, found, classes)

    summary: dict[str, Any] = {
        **summarise(evaluation, classes),
        "classes": classes,
        "held_out_images": len(records),
        "train_images": plan.train_images,
        "image_size": plan.size,
        "quick": quick,
        "seconds": time.perf_counter() - started,
    }
    summary = json_safe(summary)
    write_json(result.run_dir / "metrics.json", summary)
    console.print(evaluation.summary)
    console.print(results_table(summary))
    console.print(
        f"[green]detection demo finished in {summary['seconds']:.0f} s.[/green] Look at "
        f"{result.run_dir}/: metrics.json, curves.png, detections.png (ground truth | "
        "prediction), pr_curve.png, detections.json and ground_truth.json (COCO formats), "
        "config.yaml, checkpoints/ and final.safetensors. Next: `fcnlab eval -c "
        f"{result.run_dir}/config.yaml --checkpoint {result.run_dir}/final.safetensors` or "
        f"`fcnlab predict --checkpoint {result.run_dir}/final.safetensors IMAGES --out OUT`."
    )
    return summary


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def results_table(summary: dict[str, Any]) -> Table:
    """Held-out COCO AP, AP50 and AP75 (%) from a ``metrics.json`` summary: all classes, then
    each class."""
    table = Table(title="Held-out Shapes images: COCO box AP (%)")
    keys = ("AP", "AP50", "AP75")
    for column in ("class", *keys):
        table.add_column(column, justify="left" if column == "class" else "right")
    table.add_row("all", *(_percent(summary[key]) for key in keys))
    for name in summary["classes"]:
        table.add_row(name, *(_percent(summary[f"per_class_{key.lower()}"][name]) for key in keys))
    return table
