"""What every demo shares: the Shapes knobs, the engine recipe around a model, the run's console
and clock, the summary written to ``metrics.json`` and the one way a results table is drawn.

A demo module keeps only what its task does differently: its model, its stages, the steps
before or after the engine's training, the numbers it reports and the rows of its table.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from rich.console import Console, RenderableType
from rich.table import Table
from torch import nn

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
from fcnlab.engine import TrainResult, train
from fcnlab.runtime.checkpoint import atomic_write
from fcnlab.runtime.records import json_safe

METRICS_FILE = "metrics.json"
# Said under a quick run's table: its numbers come from a handful of steps on tiny images.
QUICK_NOTE = (
    "--quick: a handful of training steps on a few small images, to check that every step "
    "runs; these scores say nothing about what the method learns (run without --quick for them)."
)
# What the engine writes to every run folder, named last in the "look at" line.
ENGINE_FILES = "config.yaml, checkpoints/ and final.safetensors"


@dataclass(frozen=True)
class ShapesPlan:
    """The knobs every demo has: its ``Shapes`` images (``fcnlab.data.Shapes`` options), how
    many are held out, the narrow VGG-16 encoder and the batch size."""

    size: int = 80
    seed: int = 0
    # Milder than Shapes' defaults so that a ~1M-parameter network learns the shapes in minutes.
    shapes_per_image: tuple[int, int] = (1, 2)
    scale: tuple[float, float] = (0.25, 0.4)
    texture: float = 0.5
    val_images: int = 256
    encoder: str = "vgg16_bn"
    width: float = 0.125
    # 32 keeps both cores busy; 16 was 15-20% slower per image on 2 CPU threads (segmentation).
    batch_size: int = 32


Plan = TypeVar("Plan", bound=ShapesPlan)


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


def vgg_model_config(
    plan: ShapesPlan,
    name: str,
    num_classes: int,
    encoder_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> ModelConfig:
    """Model ``name`` on the plan's narrow VGG-16 encoder (``encoder_options`` beyond its width
    and the model's own ``options`` as given), randomly initialised."""
    return ModelConfig(
        name=name,
        num_classes=num_classes,
        encoder=plan.encoder,
        options={"encoder_options": {"width": plan.width, **(encoder_options or {})}, **options},
    )


def shapes_config(
    plan: ShapesPlan,
    output_root: str,
    run_name: str,
    model: ModelConfig,
    data_options: dict[str, Any],
    stages: list[StageConfig],
    warmup_steps: int,
    eval_every: int,
    channels_last: bool = False,
) -> Config:
    """A demo as an engine configuration: ``model`` and ``stages`` on Shapes (``data_options``,
    with ``plan.val_images`` held out), AdamW with a cosine schedule, evaluations every
    ``eval_every`` epochs, the run folder ``output_root/run_name``."""
    return Config(
        model=model,
        data=DataConfig(
            name="shapes",
            options=data_options,
            val_options={"num_images": plan.val_images},
            transforms=TransformConfig(crop_size=plan.size, scale_range=[1.0, 1.0], flip=0.5),
        ),
        train=TrainConfig(
            optimizer="adamw",
            weight_decay=1e-4,
            schedule="cosine",
            warmup_steps=warmup_steps,
            batch_size=plan.batch_size,
            channels_last=channels_last,
            seed=plan.seed,
            log_every=16,
        ),
        stages=stages,
        eval=EvalConfig(every_epochs=eval_every, batch_size=64, num_overlays=6),
        output=OutputConfig(root=output_root, name=run_name, tensorboard=False),
    )


def write_json(path: Path, data: Any, indent: int = 1) -> None:
    """``data`` as JSON at ``path``, written atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=indent).encode()))


def percent(value: float | None) -> str:
    """``value`` in percent with one decimal; ``"-"`` for None or NaN (nothing to measure)."""
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def demo_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A demo's results table: the first column names the row (left), the others are numbers."""
    table = Table(title=title)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def loader_workers() -> int:
    """DataLoader workers for a demo's Shapes images: none on a CPU, whose cores the model's
    own threads use; up to 8 beside a GPU, which would otherwise wait while the main process
    draws every image (about 2 ms each, 3072 per epoch)."""
    if not torch.cuda.is_available():
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


@dataclass
class DemoRun:
    """One run of a demo: where it prints, whether it shows progress bars, whether it is the
    quick version, and its clock (from :meth:`start` to :meth:`finish`)."""

    console: Console
    progress: bool
    quick: bool
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, quick: bool, console: Console | None, progress: bool | None) -> DemoRun:
        """Start the clock; progress bars show on a terminal unless ``progress`` says."""
        console = console or Console()
        return cls(console, console.is_terminal if progress is None else progress, quick)

    def plan(self, plan: Plan | None, full: Plan, quick: Plan) -> Plan:
        """``plan`` when given, else the quick or the full plan."""
        return plan or (quick if self.quick else full)

    def train(self, config: Config, model: nn.Module, **kwargs: Any) -> TrainResult:
        """``fcnlab.engine.train`` of ``model`` by ``config``, logging to the run's console, with
        :func:`loader_workers` DataLoader workers; a demo run replaces the demo's previous run
        in its folder."""
        workers = loader_workers()
        if workers and config.data.num_workers == 0:
            config = replace(config, data=replace(config.data, num_workers=workers))
        return train(
            config,
            model=model,
            console=self.console,
            progress=self.progress,
            overwrite=True,
            **kwargs,
        )

    def finish(
        self,
        run_dir: Path,
        summary: dict[str, Any],
        shown: Sequence[RenderableType],
        what: str,
        files: str,
        next_step: str,
    ) -> dict[str, Any]:
        """Write ``summary`` (with ``quick`` and ``seconds``) to ``run_dir/metrics.json``, print
        ``shown`` (under it, for a quick run, that its scores mean nothing) and where to look
        next; returns the summary as written (NaN as null).

        ``files`` names what ``run_dir`` holds besides ``metrics.json`` and the engine's files.
        """
        summary = json_safe(
            {**summary, "quick": self.quick, "seconds": time.perf_counter() - self.started}
        )
        write_json(run_dir / METRICS_FILE, summary, indent=2)
        for renderable in shown:
            self.console.print(renderable)
        if self.quick:
            self.console.print(QUICK_NOTE, style="bold yellow")
        self.console.print(
            f"[green]{what} finished in {summary['seconds']:.0f} s.[/green] Look at {run_dir}/: "
            f"{METRICS_FILE}, {files}, {ENGINE_FILES}. Next: {next_step}."
        )
        return summary
