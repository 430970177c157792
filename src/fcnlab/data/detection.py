"""Detection samples: the target format, box checks, the file-backed base class and collation.

``dataset[i]`` is ``(image, target)``: image float32 ``(3, H, W)``; target a dict with

- ``boxes``: float32 ``(M, 4)`` as ``(x1, y1, x2, y2)`` pixel *edges* in the image's frame: a box
  around pixel columns ``a..b`` (0-based, inclusive) has ``x1 = a`` and ``x2 = b + 1``, so its width
  ``x2 - x1`` counts its pixels (torchvision's and mmdetection's convention),
- ``labels``: int64 ``(M,)`` object classes in ``[0, num_classes)``, no background class,
- ``iscrowd``: int64 ``(M,)`` 0/1 (COCO's crowd regions; zeros elsewhere),
- ``difficult``: int64 ``(M,)`` 0/1 (VOC's difficult objects; zeros elsewhere),
- ``image_id``: int; ``orig_size``: ``(H0, W0)`` as stored on disk; ``image_size``: ``(H, W)``
  after the transforms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from fcnlab.data.base import FileDataset
from fcnlab.data.io import DataFormatError, read_image

Target = dict[str, Any]

# The per-box fields of a target: what selecting or dropping boxes must index together.
BOX_FIELDS = ("boxes", "labels", "iscrowd", "difficult")
# Published boxes overhang their image by rounding (COCO's float boxes, VOC's few xmin=0 boxes):
# up to this many pixels are clipped away; a box further out is an error.
OVERHANG_TOLERANCE = 1.0


def make_target(
    boxes: torch.Tensor | Sequence[Sequence[float]],
    labels: torch.Tensor | Sequence[int],
    image_id: int,
    orig_size: tuple[int, int],
    iscrowd: torch.Tensor | Sequence[int] | None = None,
    difficult: torch.Tensor | Sequence[int] | None = None,
) -> Target:
    """A target dict in the detection format (see the module docstring); missing flags are 0.

    ``image_size`` starts as ``orig_size``: the transforms and the data set update it.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    count = len(boxes)

    def flags(values: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
        if values is None:
            return torch.zeros(count, dtype=torch.int64)
        return torch.as_tensor(values, dtype=torch.int64).reshape(count)

    size = (int(orig_size[0]), int(orig_size[1]))
    return {
        "boxes": boxes,
        "labels": torch.as_tensor(labels, dtype=torch.int64).reshape(count),
        "iscrowd": flags(iscrowd),
        "difficult": flags(difficult),
        "image_id": int(image_id),
        "orig_size": size,
        "image_size": size,
    }


def select_boxes(target: Mapping[str, Any], keep: torch.Tensor) -> Target:
    """A copy of ``target`` with only the boxes ``keep`` (a bool mask or indices) in every
    per-box field."""
    return {
        key: value[keep] if key in BOX_FIELDS and isinstance(value, torch.Tensor) else value
        for key, value in target.items()
    }


def check_boxes(
    boxes: torch.Tensor, size: tuple[int, int], file: str | Path, names: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check xyxy ``boxes`` (M, 4) against an image of ``size`` (H, W).

    A box that is not finite, has a negative width or height, or reaches more than
    ``OVERHANG_TOLERANCE`` pixels outside the image raises :class:`DataFormatError` naming
    ``file`` and ``names[k]`` (which annotation it is). Returns the boxes clipped to the image
    and a bool mask of those with a positive width and height: degenerate boxes cover no pixel
    and are left out, as torchvision's COCO reference leaves them out.
    """
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    height, width = size
    finite = torch.isfinite(boxes).all(1)
    negative = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    limits = torch.tensor([0.0, 0.0, width, height], dtype=torch.float64)
    outside = (boxes[:, :2] < -OVERHANG_TOLERANCE).any(1) | (
        boxes[:, 2:] > limits[2:] + OVERHANG_TOLERANCE
    ).any(1)
    problems = (
        (~finite, "is not finite"),
        (negative, "has a negative width or height"),
        (outside, f"reaches outside the {height}x{width} image (height x width)"),
    )
    for bad, problem in problems:
        if bad.any():
            k = int(bad.nonzero()[0])
            corners = ", ".join(f"{float(v):g}" for v in boxes[k])
            raise DataFormatError(file, f"{names[k]}: box (x1, y1, x2, y2) = ({corners}) {problem}")
    clipped = torch.minimum(boxes.clamp(min=0), limits[[2, 3, 2, 3]]).float()
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, keep


class DetectionDataset(FileDataset):
    """``ds[i]`` is ``(image, target)`` (see the module docstring) from ``(image_path,
    annotation_path)`` samples; a subclass reads its annotation format in :meth:`load_target`.

    ``transforms(image, target) -> (image, target)`` moves the boxes with the image (see
    :mod:`fcnlab.data.box_transforms`); ``image_size`` is set from the image it returns. An
    invalid file or annotation raises :class:`~fcnlab.data.io.DataFormatError` naming the file and
    the annotation; with ``skip_invalid=True`` the sample is logged and counted in ``skipped``,
    and the next valid one is returned in its place.
    """

    task = "detection"

    def load_target(self, index: int) -> Target:
        """The target of sample ``index`` before transforms, its boxes checked against the image
        size its annotation records (``orig_size``)."""
        raise NotImplementedError

    def load(self, index: int) -> tuple[torch.Tensor, Target]:
        """Sample ``index`` before transforms; raises ``DataFormatError`` for a bad file."""
        target = self.load_target(index)
        image_path, annotation_path = self.samples[index]
        image = read_image(image_path)
        found = (int(image.shape[1]), int(image.shape[2]))
        if found != target["orig_size"]:
            height, width = target["orig_size"]
            raise DataFormatError(
                annotation_path,
                f"records the image '{image_path}' as {height}x{width} but it is "
                f"{found[0]}x{found[1]} (height x width)",
            )
        return image, target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image, target = super().__getitem__(index)
        return image, {**target, "image_size": (int(image.shape[1]), int(image.shape[2]))}


def detection_collate(
    batch: Sequence[tuple[torch.Tensor, Mapping[str, Any]]],
) -> tuple[torch.Tensor, list[Target]]:
    """Stack ``(image, target)`` samples for a DataLoader: images ``(N, C, Hmax, Wmax)``
    zero-padded at the bottom and right, and the targets as a list (their box counts differ).

    Padding leaves every box where it was, since boxes are measured from the top-left corner;
    ``image_size`` (the unpadded size) is filled in where a target lacks it.
    """
    if not batch:
        raise ValueError("detection_collate got an empty batch")
    images = [image for image, _ in batch]
    channels = {image.shape[0] for image in images}
    if len(channels) != 1 or any(image.dim() != 3 for image in images):
        shapes = ", ".join(str(tuple(image.shape)) for image in images)
        raise ValueError(f"detection_collate needs (C, H, W) images with one C; got {shapes}")
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    stacked = images[0].new_zeros((len(images), images[0].shape[0], height, width))
    targets = []
    for k, (image, target) in enumerate(batch):
        stacked[k, :, : image.shape[1], : image.shape[2]] = image
        size = (int(image.shape[1]), int(image.shape[2]))
        targets.append({**target, "image_size": target.get("image_size", size)})
    return stacked, targets
