"""What a detection evaluation prints and draws: COCO AP tables, ground truth beside
predictions, precision-recall curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table
from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import TransformConfig
from fcnlab.tasks.base import class_names, per_class_table, scores_table
from fcnlab.tasks.detection.coco_eval import RECALL_POINTS, CocoEvaluation
from fcnlab.tasks.detection.evaluate import DetectionEvalResult, detect
from fcnlab.viz.boxes import default_palette, plot_detections, plot_pr_curves
from fcnlab.viz.plots import save_figure

HEADLINE = ("AP", "AP50", "AP75", "AR100")


def epoch_table(result: DetectionEvalResult, title: str) -> Table:
    """COCO AP, AP50, AP75 and AR@100 in percent."""
    return scores_table(title, [(key, result.stats[key]) for key in HEADLINE])


def results_table(result: DetectionEvalResult, names: list[str]) -> Table:
    """COCO AP (IoU 0.50:0.95) and AP50 per class, then over the classes, in percent."""
    mean = [("mean", [result.stats["AP"], result.stats["AP50"]])]
    per_class = (result.per_class_ap, result.per_class_ap50)
    return per_class_table("COCO AP per class", ("AP", "AP50"), names, per_class, mean)


def detection_palette(dataset: Dataset, num_classes: int) -> np.ndarray:
    """``dataset.palette`` when it has one colour per object class, else the default colours."""
    palette = getattr(dataset, "palette", None)
    if palette is not None and len(palette) == num_classes:
        return np.asarray(palette, dtype=np.uint8)
    return default_palette(num_classes)


def first_samples(
    model: nn.Module, dataset: Dataset, count: int, infer: Callable[[torch.Tensor], Any]
) -> tuple[list[tuple[torch.Tensor, Any]], list[Any]]:
    """The first ``count`` (image, target) samples of ``dataset`` and ``infer(image[None])`` of
    each, ``model`` in eval mode meanwhile (its mode is restored after): a run's pictures of
    its validation images, as the model sees them."""
    samples = [dataset[i] for i in range(min(count, len(dataset)))]  # type: ignore[arg-type]
    was_training = model.training
    model.eval()
    try:
        found = [infer(image[None]) for image, _ in samples]
    finally:
        model.train(was_training)
    return samples, found


def write_detection_pictures(
    model: nn.Module,
    dataset: Dataset,
    count: int,
    transforms: TransformConfig,
    path: Path,
    amp: str = "off",
    score_threshold: float = 0.3,
) -> Path | None:
    """``detections.png``: ground truth | prediction (detections scoring at least
    ``score_threshold``) for the first ``count`` images of ``dataset``, as the model sees them."""
    samples, found = first_samples(
        model,
        dataset,
        count,
        lambda batch: detect(model, batch, amp, score_threshold=score_threshold)[0],
    )
    if not samples:
        return None
    num_classes = int(getattr(model, "num_classes", len(getattr(dataset, "classes", ()))))
    mean, std = (transforms.mean, transforms.std) if transforms.normalize else (None, None)
    figure = plot_detections(
        [image for image, _ in samples],
        [target for _, target in samples],
        found,
        class_names(dataset, num_classes),
        detection_palette(dataset, num_classes),
        mean,
        std,
    )
    return save_figure(figure, path)


def write_pr_curves(
    evaluation: CocoEvaluation | None,
    names: list[str],
    path: Path,
    palette: np.ndarray | None = None,
) -> Path:
    """``pr_curve.png``: precision-recall per class at IoU 0.5 and the class mean, from
    COCOeval's precision array (a result's ``coco``: boxes; an instance result's ``mask_coco``:
    masks). None (a result read back from a record keeps no precision array) is an error."""
    if evaluation is None:
        raise ValueError(
            "this result has no COCOeval precision array (results read back from a record have "
            "none); evaluate again to plot precision-recall curves"
        )
    figure = plot_pr_curves(evaluation.pr_curves(0.5), names, RECALL_POINTS, 0.5, palette)
    return save_figure(figure, path)
