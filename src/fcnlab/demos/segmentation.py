"""The lecture's whole story on built-in data: classifier -> convolutionalized -> FCN-8s.

1. Train a small VGG-16 (batch norm, 1/8 width) to say which shape covers most of a Shapes image.
2. Convolutionalize it (fc6/fc7 become convolutions) and make it the encoder of an FCN-8s.
3. Train the decoder with the encoder frozen (its batch-norm statistics too).
4. Unfreeze and fine-tune everything, the encoder at a smaller learning rate.
Held-out scores after each step go in one table and in ``runs/demo/metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

from fcnlab.config import Config, ModelConfig, StageConfig
from fcnlab.data import Shapes, eval_transforms, train_transforms
from fcnlab.demos.common import (
    DemoRun,
    ShapesPlan,
    demo_table,
    loader_workers,
    percent,
    shapes_config,
    shapes_options,
    vgg_model_config,
)
from fcnlab.demos.registry import DEMOS, Demo
from fcnlab.models import build_classifier, load_weights
from fcnlab.models.from_config import build_model_from_config
from fcnlab.tasks.segmentation.evaluate import EvalResult

RUN_NAME = "demo"


@dataclass(frozen=True)
class SegmentationPlan(ShapesPlan):
    """Sizes and lengths of the demo; ``QUICK_PLAN`` is the under-a-minute version for tests."""

    train_images: int = 3072
    classifier_epochs: int = 4
    classifier_lr: float = 4e-3
    classifier_batch_size: int = 32
    decoder_epochs: int = 1
    decoder_lr: float = 4e-3
    finetune_epochs: int = 12
    finetune_lr: float = 4e-3
    encoder_lr_mult: float = 0.75
    # NHWC activations: oneDNN's convolutions are faster in that layout on CPU as well.
    channels_last: bool = True


FULL_PLAN = SegmentationPlan()
QUICK_PLAN = replace(
    FULL_PLAN,
    size=32,
    train_images=32,
    val_images=16,
    classifier_epochs=1,
    decoder_epochs=1,
    finetune_epochs=1,
)


def train_classifier(
    model: nn.Module, plan: SegmentationPlan, console: Console, progress: bool
) -> tuple[float, list[float]]:
    """Step 1: image-level training on the dominant shape, on the GPU where there is one (the
    engine's ``device: auto``); returns (held-out accuracy, losses)."""
    options = shapes_options(plan)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = Shapes(
        plan.train_images,
        target="dominant",
        transforms=train_transforms(plan.size, scale=(1.0, 1.0)),
        **options,
    )
    val_set = Shapes(
        plan.val_images, split="val", target="dominant", transforms=eval_transforms(), **options
    )
    generator = torch.Generator().manual_seed(plan.seed)
    model.to(device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = DataLoader(
        train_set,
        plan.classifier_batch_size,
        shuffle=True,
        generator=generator,
        num_workers=loader_workers(),
        pin_memory=device.type == "cuda",
    )
    optimizer = torch.optim.AdamW(model.parameters(), plan.classifier_lr, weight_decay=1e-4)
    total = plan.classifier_epochs * len(loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, plan.classifier_lr, total)
    losses: list[float] = []
    with Progress(console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("step 1: classifier", total=total)
        for epoch in range(plan.classifier_epochs):
            model.train()
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                if plan.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                loss = F.cross_entropy(model(images), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.advance(task)
            console.log(f"classifier epoch {epoch + 1}/{plan.classifier_epochs}: loss {loss:.3f}")
    return classifier_accuracy(model, val_set), losses


@torch.no_grad()
def classifier_accuracy(model: nn.Module, dataset: Shapes) -> float:
    """Share of ``dataset`` whose dominant shape ``model`` names correctly."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for images, labels in DataLoader(dataset, batch_size=64, num_workers=loader_workers()):
        correct += int((model(images.to(device)).argmax(dim=1).cpu() == labels).sum())
    return correct / len(dataset)


def segmentation_config(plan: SegmentationPlan, output_root: str) -> Config:
    """Steps 3 and 4 as an engine configuration (written to the run folder as config.yaml)."""
    return shapes_config(
        plan,
        output_root,
        RUN_NAME,
        model=vgg_model_config(plan, "fcn8s", 6, encoder_options={"fc6_kernel": 1}),
        data_options={**shapes_options(plan), "num_images": plan.train_images},
        stages=[
            StageConfig(
                name="decoder (encoder frozen)",
                epochs=plan.decoder_epochs,
                encoder="frozen",
                lr=plan.decoder_lr,
            ),
            StageConfig(
                name="fine-tune",
                epochs=plan.finetune_epochs,
                encoder="trainable",
                lr=plan.finetune_lr,
                encoder_lr_mult=plan.encoder_lr_mult,
            ),
        ],
        warmup_steps=20,
        eval_every=5,
        channels_last=plan.channels_last,
    )


def fcn_from_classifier(config: ModelConfig, classifier: nn.Module) -> nn.Module:
    """Step 2: the model ``config`` describes with ``classifier``'s weights in its encoder (fc6
    and fc7 become convolutions as they load)."""
    model = build_model_from_config(config)
    # ModelConfig.encoder_weights names a file; these weights are in memory. Loading draws no
    # random numbers, so the decoder starts as it would with the weights given to the builder.
    load_weights(model.encoder, classifier.state_dict())
    return model


def held_out_scores(result: EvalResult) -> dict[str, Any]:
    """The four means and the per-class scores of one evaluation, as ``metrics.json`` has them."""
    return {
        "mean_iou": result.mean_iou,
        "pixel_accuracy": result.pixel_accuracy,
        "mean_accuracy": result.mean_accuracy,
        "fw_iou": result.fw_iou,
        "iou": result.iou,
        "accuracy": result.accuracy,
    }


def run_segmentation_demo(
    quick: bool = False,
    output_root: str = "runs",
    console: Console | None = None,
    progress: bool | None = None,
    plan: SegmentationPlan | None = None,
) -> dict[str, Any]:
    """Run the four steps (``plan`` overrides the full or quick plan); returns what
    ``runs/demo/metrics.json`` holds."""
    run = DemoRun.start(quick, console, progress)
    plan = run.plan(plan, FULL_PLAN, QUICK_PLAN)
    torch.manual_seed(plan.seed)

    run.console.rule("[bold]1. A classifier: which shape covers most of the image?")
    classifier = build_classifier(plan.encoder, num_classes=6, width=plan.width, fc6_kernel=1)
    accuracy, _ = train_classifier(classifier, plan, run.console, run.progress)
    run.console.log(f"held-out classifier accuracy: {accuracy:.3f}")

    run.console.rule("[bold]2. Convolutionalized: fc6/fc7 become convolutions, the FCN-8s encoder")
    config = segmentation_config(plan, output_root)
    model = fcn_from_classifier(config.model, classifier)
    run.console.rule("[bold]3-4. Decoder on the frozen encoder, then fine-tuning everything")
    result = run.train(config, model)
    frozen, tuned = (stage.final for stage in result.stages)
    assert frozen is not None and tuned is not None  # every stage ends with an evaluation

    summary: dict[str, Any] = {
        **held_out_scores(tuned),
        "classes": list(Shapes(1).classes),
        "classifier_accuracy": accuracy,
        "after_frozen_encoder": held_out_scores(frozen),
        "after_fine_tuning": held_out_scores(tuned),
        "held_out_images": plan.val_images,
    }
    return run.finish(
        result.run_dir,
        summary,
        [results_table(accuracy, frozen, tuned)],
        what="demo",
        files="curves.png (stages marked), confusion.png, overlays.png",
        next_step=f"`fcnlab lesson --out lesson --run {result.run_dir}`",
    )


def results_table(accuracy: float, frozen: EvalResult, tuned: EvalResult) -> Table:
    """The demo's one table: classifier accuracy, then held-out scores after steps 3 and 4."""
    rows = [["1. classifier (dominant shape)", percent(accuracy), "", "", "", ""]]
    for name, result in (("3. FCN-8s, encoder frozen", frozen), ("4. FCN-8s, fine-tuned", tuned)):
        means = (result.mean_iou, result.pixel_accuracy, result.mean_accuracy, result.fw_iou)
        rows.append([name, "", *map(percent, means)])
    return demo_table(
        "Held-out Shapes images (%)",
        ("step", "accuracy", "mIoU", "pixel acc.", "mean acc.", "f.w. IU"),
        rows,
    )


@DEMOS.register("segmentation")
def segmentation_demo() -> Demo:
    """``fcnlab demo``: classifier -> convolutionalized -> FCN-8s on Shapes."""
    return Demo(
        run=run_segmentation_demo,
        run_name=RUN_NAME,
        summary="classifier -> convolutionalized -> FCN-8s",
        description="train a small VGG-16 classifier on Shapes, convolutionalize it into the "
        "encoder of an FCN-8s, train the decoder with the encoder frozen, then fine-tune all; "
        "held-out scores after each step.",
    )
