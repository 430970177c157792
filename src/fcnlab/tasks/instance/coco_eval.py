"""Instance segmentation evaluation: COCO mask AP and box AP through pycocotools' ``COCOeval``.

Masks travel as COCO's compressed run-length encoding (RLE), made by ``pycocotools.mask.encode``
from uint8 (H, W, K) arrays in Fortran (column-major) order, the order COCO's runs follow, at
each image's size *as stored* (``orig_size``): pycocotools scores a pair of masks of different
sizes as IoU -1 without a word, so :func:`~fcnlab.tasks.detection.coco_eval.coco_evaluate`
checks every size first. Ground truth is one record per image, detection's records (boxes,
labels, iscrowd, image_id, height, width) with ``"segmentation"`` (one RLE per object) and
``"area"`` (the masks' pixel counts, as COCO's own files give it: the small/medium/large ranges
of mask AP *and* box AP go by the mask's area). Detections are ``{"boxes", "scores", "labels",
"segmentation"}`` per image. Mask results carry no "bbox" (see ``detections_to_coco``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from fcnlab.tasks.detection.coco_eval import CocoEvaluation, coco_evaluate

# A COCO compressed RLE: {"size": [height, width], "counts": str}.
Rle = dict[str, Any]


def encode_masks(masks: torch.Tensor) -> list[Rle]:
    """COCO RLEs of bool masks (K, H, W), counts as ASCII text (JSON-ready, and what
    pycocotools reads as well as its own bytes).

    ``pycocotools.mask.encode`` needs uint8 (H, W, K) in Fortran order: the masks are
    transposed to (K, W, H) once, whose memory is exactly that layout, so no other copy is made.
    """
    if masks.dim() != 3:
        raise ValueError(f"encode_masks needs (K, H, W) masks, got shape {tuple(masks.shape)}")
    if len(masks) == 0:
        return []
    columns = masks.detach().to("cpu", torch.bool).transpose(1, 2).contiguous()
    array = columns.view(torch.uint8).permute(2, 1, 0).numpy()  # (H, W, K), Fortran order
    rles = mask_utils.encode(np.asfortranarray(array))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def rle_areas(rles: Sequence[Rle]) -> torch.Tensor:
    """Pixels in each RLE mask (K,) as float64 (COCO's "area" of a mask)."""
    if not rles:
        return torch.zeros(0, dtype=torch.float64)
    return torch.as_tensor(mask_utils.area(list(rles)).astype(np.float64))


def coco_evaluate_instances(
    records: Sequence[Mapping[str, Any]],
    detections: Sequence[Mapping[str, Any]],
    categories: int | Sequence[str],
) -> tuple[CocoEvaluation, CocoEvaluation]:
    """``(masks, boxes)``: COCOeval with ``iouType="segm"`` on the detections' RLEs and with
    ``"bbox"`` on their boxes, against the same ground truth (crowd regions ignored by both)."""
    return (
        coco_evaluate(records, detections, categories, iou_type="segm"),
        coco_evaluate(records, detections, categories, iou_type="bbox"),
    )
