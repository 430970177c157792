"""A run's pictures: curves, confusion matrix, validation overlays (``fcnlab.viz.plots``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import TransformConfig
from fcnlab.engine.evaluate import EvalResult, predict
from fcnlab.viz.plots import plot_confusion, plot_curves, plot_overlays, save_figure


def class_names(dataset: Dataset, num_classes: int) -> list[str]:
    """``dataset.classes`` when it has them, else ``"0", "1", ...``."""
    names = getattr(dataset, "classes", None)
    return (
        list(names)
        if names is not None and len(names) == num_classes
        else [str(i) for i in range(num_classes)]
    )


def write_confusion(result: EvalResult, names: list[str], path: Path) -> Path:
    """``confusion.png``: the row-normalised confusion matrix."""
    return save_figure(plot_confusion(torch.tensor(result.confusion), names), path)


def write_curves(records: list[dict[str, Any]], path: Path) -> Path:
    """``curves.png``: loss and lr per step, mIoU and pixel accuracy per evaluation, stages."""
    return save_figure(plot_curves(records), path)


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
