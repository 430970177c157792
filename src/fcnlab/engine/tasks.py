"""What differs between training a segmenter and a detector, so one loop serves both.

The engine asks the model which task it solves (``model.task``, ``"segmentation"`` when the
attribute is absent) and from then on goes through a :class:`Task`: how batches are collated,
how a batch's loss is computed, how the model is evaluated (mIoU or COCO AP: the *score* that
picks ``best.pt``), how an evaluation is printed and which pictures a run folder gets. Stages,
optimisers, checkpoints, resume, distribution and logging stay in the trainer, written once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fcnlab.config import Config
from fcnlab.engine.evaluate import EvalResult, evaluate

TASKS = ("segmentation", "detection")


class Evaluation(Protocol):
    """An evaluation result: a score for choosing the best model and a ``metrics.jsonl`` line."""

    stage: int
    epoch: int
    step: int

    @property
    def score(self) -> float: ...

    def record(self) -> dict[str, Any]: ...


def model_task(model: nn.Module) -> str:
    """The task ``model`` solves: its ``task`` attribute, ``"segmentation"`` when it has none."""
    task = getattr(model, "task", "segmentation")
    if task not in TASKS:
        raise ValueError(f"model {type(model).__name__} has task {task!r}; expected one of {TASKS}")
    return task


class Task:
    """The segmentation task; :class:`DetectionTask` overrides what differs."""

    name = "segmentation"
    metric = "mIoU"

    def __init__(self, config: Config, loss: nn.Module | None = None) -> None:
        self.config = config
        self.loss_fn = loss
        if loss is None:
            from fcnlab.engine.build import build_loss_from_config

            self.loss_fn = build_loss_from_config(config.train, config.data.ignore_index)

    def collate(self) -> Callable[[list[Any]], Any] | None:
        """The DataLoader's ``collate_fn`` (None: PyTorch's default stacking)."""
        return None

    def loss(
        self, net: nn.Module, model: nn.Module, images: torch.Tensor, targets: Any
    ) -> torch.Tensor:
        """The scalar training loss of one micro-batch (``net`` may be the DDP wrapper)."""
        assert self.loss_fn is not None
        return self.loss_fn(net(images), targets.to(images.device, non_blocking=True))

    def evaluate(self, model: nn.Module, loader: DataLoader) -> EvalResult:
        """Scores on the validation loader (every process returns the whole set's scores)."""
        config = self.config
        return evaluate(
            model,
            loader,
            config.model.num_classes,
            config.data.ignore_index,
            config.train.amp,
            config.train.channels_last,
        )

    def result_from_record(self, record: dict[str, Any]) -> EvalResult:
        """The inverse of ``result.record()``."""
        return EvalResult.from_record(record)

    def table(self, result: Any, title: str) -> Table:
        """The evaluation printed after each epoch: the four means in percent."""
        table = Table(title=title)
        for column in ("mIoU", "pixel acc.", "mean acc.", "f.w. IoU"):
            table.add_column(column, justify="right")
        table.add_row(
            *(f"{100 * v:.2f}" for v in (result.mean_iou, result.pixel_accuracy,
                                         result.mean_accuracy, result.fw_iou))
        )  # fmt: skip
        return table

    def write_pictures(
        self, model: nn.Module, val_set: Dataset, last: Any | None, run_dir: Any
    ) -> None:
        """``confusion.png`` and ``overlays.png`` (``curves.png`` is written by the trainer)."""
        from fcnlab.engine.report import class_names, write_confusion, write_overlays

        config = self.config
        if last is not None:
            names = class_names(val_set, config.model.num_classes)
            write_confusion(last, names, run_dir / "confusion.png")
        write_overlays(
            model,
            val_set,
            config.eval.num_overlays,
            config.data.transforms,
            config.data.ignore_index,
            run_dir / "overlays.png",
            config.train.amp,
        )


class DetectionTask(Task):
    """Detection: batches of (images, list of target dicts), the model's own ``loss`` and
    ``decode``, COCO AP through ``COCOeval`` as the score."""

    name = "detection"
    metric = "AP"

    def __init__(self, config: Config, loss: nn.Module | None = None) -> None:
        if loss is not None:
            raise ValueError(
                "a detection model computes its own loss (model.loss(outputs, targets)); "
                "do not pass loss= for a detection run"
            )
        self.config = config
        self.loss_fn = None

    def collate(self) -> Callable[[list[Any]], Any]:
        from fcnlab.data import detection_collate

        return detection_collate

    def loss(
        self,
        net: nn.Module,
        model: nn.Module,
        images: torch.Tensor,
        targets: Sequence[dict[str, Any]],
    ) -> torch.Tensor:
        return model.loss(net(images), targets)["loss"]

    def evaluate(self, model: nn.Module, loader: DataLoader) -> Any:
        from fcnlab.engine.detection_evaluate import evaluate_detection

        config = self.config
        return evaluate_detection(
            model, loader, config.model.num_classes, config.train.amp, config.train.channels_last
        )

    def result_from_record(self, record: dict[str, Any]) -> Any:
        from fcnlab.engine.detection_evaluate import DetectionEvalResult

        return DetectionEvalResult.from_record(record)

    def table(self, result: Any, title: str) -> Table:
        """COCO AP, AP50, AP75 and AR@100 in percent."""
        table = Table(title=title)
        keys = ("AP", "AP50", "AP75", "AR100")
        for key in keys:
            table.add_column(key, justify="right")
        table.add_row(*(f"{100 * result.stats[key]:.2f}" for key in keys))
        return table

    def write_pictures(
        self, model: nn.Module, val_set: Dataset, last: Any | None, run_dir: Any
    ) -> None:
        """``detections.png``: ground truth | prediction for the first validation images, and
        ``pr_curve.png`` (precision-recall per class at IoU 0.5) from the last evaluation."""
        from fcnlab.engine.detection_report import (
            detection_palette,
            write_detection_pictures,
            write_pr_curves,
        )
        from fcnlab.engine.report import class_names

        config = self.config
        if last is not None and "evaluation" in last.extra:
            names = class_names(val_set, config.model.num_classes)
            palette = detection_palette(val_set, config.model.num_classes)
            write_pr_curves(last, names, run_dir / "pr_curve.png", palette)
        write_detection_pictures(
            model,
            val_set,
            config.eval.num_overlays,
            config.data.transforms,
            run_dir / "detections.png",
            config.train.amp,
        )


def make_task(name: str, config: Config, loss: nn.Module | None = None) -> Task:
    """The :class:`Task` for ``name`` (see :func:`model_task`)."""
    return DetectionTask(config, loss) if name == "detection" else Task(config, loss)
