"""The lecture's whole story on built-in data: classifier -> convolutionalized -> FCN-8s.

1. Train a small VGG-16 (batch norm, 1/8 width) to say which shape covers most of a Shapes image.
2. Convolutionalize it (fc6/fc7 become convolutions) and make it the encoder of an FCN-8s.
3. Train the decoder with the encoder frozen (its batch-norm statistics too).
4. Unfreeze and fine-tune everything, the encoder at a smaller learning rate.
Held-out scores after each step go in one table and in ``runs/demo/metrics.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader

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
from fcnlab.data import Shapes
from fcnlab.data.transforms import eval_transforms, train_transforms
from fcnlab.engine import train
from fcnlab.engine.evaluate import EvalResult
from fcnlab.models import build_model
from fcnlab.models.classifier import build_classifier
from fcnlab.runtime.checkpoint import atomic_write
from fcnlab.runtime.records import json_safe


@dataclass(frozen=True)
class ShapesPlan:
    """The ``Shapes`` images both demos train on (``fcnlab.data.Shapes`` knobs)."""

    size: int = 80
    seed: int = 0
    # Milder than Shapes' defaults so that a ~1M-parameter network learns the shapes in minutes.
    shapes_per_image: tuple[int, int] = (1, 2)
    scale: tuple[float, float] = (0.25, 0.4)
    texture: float = 0.5


@dataclass(frozen=True)
class DemoPlan(ShapesPlan):
    """Sizes and lengths of the demo; ``QUICK_PLAN`` is the under-a-minute version for tests."""

    train_images: int = 3072
    val_images: int = 256
    width: float = 0.125
    encoder: str = "vgg16_bn"
    classifier_epochs: int = 4
    classifier_lr: float = 4e-3
    classifier_batch_size: int = 32
    decoder_epochs: int = 1
    decoder_lr: float = 4e-3
    finetune_epochs: int = 12
    finetune_lr: float = 4e-3
    encoder_lr_mult: float = 0.75
    # 32 keeps both cores busy; 16 was 15-20% slower per image on 2 CPU threads.
    batch_size: int = 32
    # NHWC activations: oneDNN's convolutions are faster in that layout on CPU as well.
    channels_last: bool = True


FULL_PLAN = DemoPlan()
QUICK_PLAN = replace(
    FULL_PLAN,
    size=32,
    train_images=32,
    val_images=16,
    classifier_epochs=1,
    decoder_epochs=1,
    finetune_epochs=1,
)


def shapes_options(plan: ShapesPlan) -> dict[str, Any]:
    """The ``Shapes`` options shared by every step of a demo."""
    return {
        "size": plan.size,
        "shapes_per_image": list(plan.shapes_per_image),
        "scale": list(plan.scale),
        "texture": plan.texture,
        "seed": plan.seed,
        "cache": True,
    }


def train_classifier(
    model: nn.Module, plan: DemoPlan, console: Console, progress: bool
) -> tuple[float, list[float]]:
    """Step 1: image-level training on the dominant shape; returns (held-out accuracy, losses)."""
    options = shapes_options(plan)
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
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = DataLoader(train_set, plan.classifier_batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), plan.classifier_lr, weight_decay=1e-4)
    total = plan.classifier_epochs * len(loader)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, plan.classifier_lr, total)
    losses: list[float] = []
    with Progress(console=console, disable=not progress, transient=True) as bar:
        task = bar.add_task("step 1: classifier", total=total)
        for epoch in range(plan.classifier_epochs):
            model.train()
            for images, labels in loader:
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
    correct = 0
    for images, labels in DataLoader(dataset, batch_size=64):
        correct += int((model(images).argmax(dim=1) == labels).sum())
    return correct / len(dataset)


def segmentation_config(plan: DemoPlan, output_root: str) -> Config:
    """Steps 3 and 4 as an engine configuration (written to the run folder as config.yaml)."""
    options = shapes_options(plan)
    return Config(
        model=ModelConfig(
            name="fcn8s",
            num_classes=6,
            encoder=plan.encoder,
            options={"encoder_options": {"width": plan.width, "fc6_kernel": 1}},
        ),
        data=DataConfig(
            name="shapes",
            options={**options, "num_images": plan.train_images},
            val_options={"num_images": plan.val_images},
            transforms=TransformConfig(crop_size=plan.size, scale_range=[1.0, 1.0], flip=0.5),
        ),
        train=TrainConfig(
            optimizer="adamw",
            weight_decay=1e-4,
            schedule="cosine",
            warmup_steps=20,
            batch_size=plan.batch_size,
            channels_last=plan.channels_last,
            seed=plan.seed,
            log_every=16,
        ),
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
        eval=EvalConfig(every_epochs=5, batch_size=64, num_overlays=6),
        output=OutputConfig(root=output_root, name="demo", tensorboard=False),
    )


def _scores(result: EvalResult) -> dict[str, Any]:
    return {
        "mean_iou": result.mean_iou,
        "pixel_accuracy": result.pixel_accuracy,
        "mean_accuracy": result.mean_accuracy,
        "fw_iou": result.fw_iou,
        "iou": result.iou,
        "accuracy": result.accuracy,
    }


def run_demo(
    quick: bool = False,
    output_root: str = "runs",
    console: Console | None = None,
    progress: bool | None = None,
    plan: DemoPlan | None = None,
) -> dict[str, Any]:
    """Run the four steps (``plan`` overrides the full or quick plan); returns what
    ``runs/demo/metrics.json`` holds."""
    console = console or Console()
    plan = plan or (QUICK_PLAN if quick else FULL_PLAN)
    started = time.perf_counter()
    torch.manual_seed(plan.seed)
    show = console.is_terminal if progress is None else progress

    console.rule("[bold]1. A classifier: which shape covers most of the image?")
    classifier = build_classifier(plan.encoder, num_classes=6, width=plan.width, fc6_kernel=1)
    accuracy, _ = train_classifier(classifier, plan, console, show)
    console.log(f"held-out classifier accuracy: {accuracy:.3f}")

    console.rule("[bold]2. Convolutionalized: fc6/fc7 become convolutions, the FCN-8s encoder")
    config = segmentation_config(plan, output_root)
    model = build_model(
        "fcn8s",
        6,
        encoder=plan.encoder,
        encoder_options={"width": plan.width, "fc6_kernel": 1},
        encoder_weights=classifier.state_dict(),
    )
    console.rule("[bold]3-4. Decoder on the frozen encoder, then fine-tuning everything")
    result = train(config, model=model, console=console, progress=show)
    frozen, tuned = (stage.final for stage in result.stages)
    assert frozen is not None and tuned is not None  # every stage ends with an evaluation

    summary: dict[str, Any] = {
        **_scores(tuned),
        "classes": list(Shapes(1).classes),
        "classifier_accuracy": accuracy,
        "after_frozen_encoder": _scores(frozen),
        "after_fine_tuning": _scores(tuned),
        "held_out_images": plan.val_images,
        "quick": quick,
        "seconds": time.perf_counter() - started,
    }
    summary = json_safe(summary)
    path = result.run_dir / "metrics.json"
    atomic_write(path, lambda f: f.write(json.dumps(summary, indent=2).encode()))
    console.print(results_table(accuracy, frozen, tuned))
    console.print(
        f"[green]demo finished in {summary['seconds']:.0f} s.[/green] Look at {result.run_dir}/: "
        "metrics.json, curves.png (stages marked), confusion.png, overlays.png, config.yaml, "
        "checkpoints/ and final.safetensors. Next: `fcnlab lesson --out lesson --run "
        f"{result.run_dir}`."
    )
    return summary


def results_table(accuracy: float, frozen: EvalResult, tuned: EvalResult) -> Table:
    """The demo's one table: classifier accuracy, then held-out scores after steps 3 and 4."""
    table = Table(title="Held-out Shapes images (%)")
    for column in ("step", "accuracy", "mIoU", "pixel acc.", "mean acc.", "f.w. IU"):
        table.add_column(column, justify="right" if column != "step" else "left")
    table.add_row("1. classifier (dominant shape)", f"{100 * accuracy:.1f}", "", "", "", "")
    for name, result in (("3. FCN-8s, encoder frozen", frozen), ("4. FCN-8s, fine-tuned", tuned)):
        table.add_row(
            name,
            "",
            f"{100 * result.mean_iou:.1f}",
            f"{100 * result.pixel_accuracy:.1f}",
            f"{100 * result.mean_accuracy:.1f}",
            f"{100 * result.fw_iou:.1f}",
        )
    return table
