"""The picture of a run's instance masks: image | ground truth | prediction for the first
validation images, each instance in its own colour (:func:`fcnlab.viz.instances.plot_instances`)."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from fcnlab.config import TransformConfig
from fcnlab.ops.masks import paste_masks
from fcnlab.tasks.base import class_names
from fcnlab.tasks.detection.report import first_samples
from fcnlab.tasks.instance.evaluate import segment_instances
from fcnlab.viz.instances import plot_instances
from fcnlab.viz.plots import save_figure


def write_instance_pictures(
    model: nn.Module,
    dataset: Dataset,
    count: int,
    transforms: TransformConfig,
    path: Path,
    amp: str = "off",
    score_threshold: float = 0.3,
) -> Path | None:
    """``instances.png``: image | ground truth | prediction (instances scoring at least
    ``score_threshold``) for the first ``count`` images of ``dataset``, as the model sees them
    (``transforms``' mean and std undo the normalisation for drawing); None for no images."""
    samples, found = first_samples(
        model,
        dataset,
        count,
        lambda batch: segment_instances(model, batch, amp, score_threshold=score_threshold)[0],
    )
    if not samples:
        return None
    predictions = [
        {**d, "masks": paste_masks(d["masks"], d["mask_stride"], image.shape[-2:])}
        for d, (image, _) in zip(found, samples, strict=True)
    ]
    num_classes = int(getattr(model, "num_classes", len(getattr(dataset, "classes", ()))))
    mean, std = (transforms.mean, transforms.std) if transforms.normalize else (None, None)
    figure = plot_instances(
        [image for image, _ in samples],
        [target for _, target in samples],
        predictions,
        class_names(dataset, num_classes),
        mean,
        std,
    )
    return save_figure(figure, path)
