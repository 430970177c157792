"""What a segmentation evaluation prints and draws: tables, confusion matrix, overlays."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.table import Table
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import TransformConfig
from fcnlab.tasks.base import class_names, per_class_table, scores_table
from fcnlab.tasks.segmentation.evaluate import MEAN_KEYS, EvalResult, predict
from fcnlab.viz.plots import plot_confusion, plot_overlays, save_figure

MEAN_LABELS = ("mean IoU", "pixel accuracy", "mean accuracy", "f.w. IoU")


def epoch_table(result: EvalResult, title: str) -> Table:
    """The evaluation printed after each epoch: the four means in percent."""
    labels = ("mIoU", "pixel acc.", "mean acc.", "f.w. IoU")
    scores = [(label, getattr(result, key)) for label, key in zip(labels, MEAN_KEYS, strict=True)]
    return scores_table(title, scores)


def results_table(result: EvalResult, names: list[str]) -> Table:
    """IoU and accuracy per class, then the four means, in percent."""
    keys = zip(MEAN_LABELS, MEAN_KEYS, strict=True)
    means = [(label, [getattr(result, key)]) for label, key in keys]
    return per_class_table(
        "evaluation", ("IoU", "accuracy"), names, (result.iou, result.accuracy), means
    )


def write_confusion(result: EvalResult, names: list[str], path: Path) -> Path:
    """``confusion.png``: the row-normalised confusion matrix."""
    return save_figure(plot_confusion(torch.tensor(result.confusion), names), path)


def write_overlays(
    model: nn.Module,
    dataset: Dataset,
    count: int,
    transforms: TransformConfig,
    ignore_index: int,
    path: Path,
    amp: str = "off",
) -> Path | None:
    """``overlays.png``: image | ground truth | prediction for the first ``count`` images, in the
    data set's palette (a grey ramp when it has none)."""
    count = min(count, len(dataset))  # type: ignore[arg-type]
    if count == 0:
        return None
    samples = [dataset[i] for i in range(count)]
    images = [image for image, _ in samples]
    logits = [predict(model, image[None], amp)[0].cpu() for image in images]
    preds = [scores.argmax(dim=0) for scores in logits]
    num_classes = int(logits[0].shape[0])
    names = class_names(dataset, num_classes)
    palette = getattr(dataset, "palette", None)
    if palette is None:
        palette = [[round(255 * k / max(num_classes - 1, 1))] * 3 for k in range(num_classes)]
    mean, std = (transforms.mean, transforms.std) if transforms.normalize else (None, None)
    figure = plot_overlays(
        images, [mask for _, mask in samples], preds, palette, names, ignore_index, mean, std
    )
    return save_figure(figure, path)
