"""Evaluation: run a model over a loader and score it with Long et al.'s four metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from fcnlab.runtime.precision import autocast, main_output, model_input
from fcnlab.runtime.records import json_safe, nan_for_none
from fcnlab.tasks.base import run_evaluation
from fcnlab.tasks.segmentation.metrics import ConfusionMatrix

MEAN_KEYS = ("mean_iou", "pixel_accuracy", "mean_accuracy", "fw_iou")


@dataclass
class EvalResult:
    """Scores of one evaluation; ``confusion[i, j]`` counts true class i predicted as j."""

    mean_iou: float
    pixel_accuracy: float
    mean_accuracy: float
    fw_iou: float
    iou: list[float]
    accuracy: list[float]
    confusion: list[list[int]]
    stage: int = 0
    epoch: int = 0
    step: int = 0

    @property
    def score(self) -> float:
        """The number that picks the best checkpoint: mean IoU."""
        return self.mean_iou

    def record(self) -> dict[str, Any]:
        """A JSON-safe ``metrics.jsonl`` line (NaN as null)."""
        record = {"kind": "eval", "task": "segmentation", "stage": self.stage}
        record.update(epoch=self.epoch, step=self.step)
        record.update({key: getattr(self, key) for key in MEAN_KEYS})
        record.update(iou=self.iou, accuracy=self.accuracy, confusion=self.confusion)
        return json_safe(record)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EvalResult:
        """The inverse of :meth:`record` (null back to NaN)."""
        numbers = {key: nan_for_none(record[key]) for key in MEAN_KEYS}
        return cls(
            **numbers,
            iou=[nan_for_none(v) for v in record["iou"]],
            accuracy=[nan_for_none(v) for v in record["accuracy"]],
            confusion=record["confusion"],
            stage=record["stage"],
            epoch=record["epoch"],
            step=record["step"],
        )


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    amp: str = "off",
    channels_last: bool = False,
) -> torch.Tensor:
    """Class logits (N, K, H, W) at the images' size; the model's mode is left as it was."""
    images = model_input(model, images, channels_last)
    with autocast(images.device, amp):
        logits = main_output(model(images))
    if logits.shape[-2:] != images.shape[-2:]:
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear")
    return logits.float()


class SegmentationEvaluator:
    """Counts a confusion matrix over batches of logits (N, K, H, W) and masks (N, H, W) and
    scores it (the :class:`~fcnlab.tasks.base.Evaluator` of segmentation)."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Start a new evaluation."""
        self.matrix = ConfusionMatrix(self.num_classes, self.ignore_index)

    def process(self, logits: torch.Tensor, masks: torch.Tensor) -> None:
        """Add one batch."""
        self.matrix.update(logits.argmax(dim=1), masks.to(logits.device))

    def evaluate(self) -> EvalResult:
        """The four means and per-class scores over every process's batches."""
        self.matrix.all_reduce()
        scores = self.matrix.compute(sync=False)
        return EvalResult(
            **{key: scores[key] for key in MEAN_KEYS},
            iou=scores["iou"],
            accuracy=scores["accuracy"],
            confusion=self.matrix.matrix.cpu().tolist(),
        )


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    num_classes: int,
    ignore_index: int | None = 255,
    amp: str = "off",
    channels_last: bool = False,
    infer: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> EvalResult:
    """Score ``model`` on ``loader`` (batches of images (N, 3, H, W), masks (N, H, W)).

    ``infer`` maps a batch of images to logits (N, K, H, W) in place of the plain forward (e.g.
    ``fcnlab.inference``'s sliding windows and test-time augmentation). In a distributed run
    each process passes its share and the confusion matrices are summed, so every process
    returns the scores of the whole set.
    """
    if infer is None:

        def infer(images: torch.Tensor) -> torch.Tensor:
            return predict(model, images, amp, channels_last)

    evaluator = SegmentationEvaluator(num_classes, ignore_index)
    return run_evaluation(model, loader, evaluator, infer)
