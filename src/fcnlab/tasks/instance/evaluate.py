"""Instance segmentation evaluation: run a model over a loader, score masks and boxes with COCOeval.

Each image is brought to its size as stored on disk (``orig_size``) as soon as it is processed:
boxes as detection maps them (:func:`~fcnlab.tasks.detection.evaluate.to_original_frame`), the
predicted mask probabilities pasted ``chunk`` masks at a time (crop to the unpadded image,
resize, threshold: :func:`~fcnlab.ops.masks.paste_masks_chunks`) and each chunk run-length
encoded at once, the ground-truth masks likewise. Only RLEs are kept, so memory grows with the
masks' outlines, never with K full-size float masks: a 2048x1024 image with 100 detections holds
at most ``chunk`` float masks of its size at a time (:func:`evaluation_peak_memory` measures it).
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnlab.data.transforms import resize_mask
from fcnlab.ops.masks import PASTE_CHUNK, paste_masks_chunks
from fcnlab.runtime.records import json_safe, nan_for_none
from fcnlab.tasks.detection.coco_eval import COCO_METRICS, CocoEvaluation
from fcnlab.tasks.detection.evaluate import DetectionEvaluator, decode_batch, to_original_frame
from fcnlab.tasks.instance.coco_eval import coco_evaluate_instances, encode_masks, rle_areas

# What a record prefixes COCOeval's 12 names with: "mask_AP", ..., "box_ARl".
KINDS = ("mask", "box")
PER_CLASS = ("per_class_mask_ap", "per_class_mask_ap50", "per_class_box_ap")


@dataclass
class InstanceEvalResult:
    """COCO scores of one evaluation: the 12 ``COCO_METRICS`` of the masks (``mask_stats``) and
    of the boxes (``box_stats``), mask AP and AP50 and box AP per class.

    NaN marks a number without ground truth to measure (COCOeval's -1), and the AP of a class
    without ground-truth objects. ``mask_coco`` / ``box_coco`` (not serialised: None for a result
    read back from a record) are what COCOeval measured: precision arrays and summary texts.
    """

    mask_stats: dict[str, float]
    box_stats: dict[str, float]
    per_class_mask_ap: list[float]
    per_class_mask_ap50: list[float]
    per_class_box_ap: list[float]
    num_images: int = 0
    stage: int = 0
    epoch: int = 0
    step: int = 0
    mask_coco: CocoEvaluation | None = field(default=None, repr=False, compare=False)
    box_coco: CocoEvaluation | None = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float:
        """The number that picks the best checkpoint: COCO mask AP (IoU 0.50:0.95)."""
        return self.mask_stats["AP"]

    @property
    def metric_name(self) -> str:
        """The name of :attr:`score`."""
        return "mask AP"

    def record(self) -> dict[str, Any]:
        """A JSON-safe ``metrics.jsonl`` line (NaN as null): "mask_AP", ..., "box_ARl" at the
        top level, then the per-class lists."""
        record: dict[str, Any] = {
            "kind": "eval",
            "task": "instance",
            "stage": self.stage,
            "epoch": self.epoch,
            "step": self.step,
            "num_images": self.num_images,
        }
        for kind, stats in zip(KINDS, (self.mask_stats, self.box_stats), strict=True):
            record.update({f"{kind}_{key}": stats[key] for key in COCO_METRICS})
        for key in PER_CLASS:
            record[key] = getattr(self, key)
        return json_safe(record)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> InstanceEvalResult:
        """The inverse of :meth:`record` (null back to NaN)."""
        keys = [f"{kind}_{key}" for kind in KINDS for key in COCO_METRICS]
        missing = [key for key in (*keys, *PER_CLASS) if key not in record]
        if missing:
            raise ValueError(
                f"instance evaluation record lacks {missing} (it has {sorted(record)})"
            )
        mask_stats, box_stats = (
            {key: nan_for_none(record[f"{kind}_{key}"]) for key in COCO_METRICS} for kind in KINDS
        )
        per_class = {key: [nan_for_none(v) for v in record[key]] for key in PER_CLASS}
        return cls(
            mask_stats=mask_stats,
            box_stats=box_stats,
            **per_class,
            num_images=int(record.get("num_images", 0)),
            stage=record.get("stage", 0),
            epoch=record.get("epoch", 0),
            step=record.get("step", 0),
        )


def segment_instances(
    model: nn.Module,
    images: torch.Tensor,
    amp: str = "off",
    channels_last: bool = False,
    score_threshold: float = 0.05,
    top_k: int = 100,
) -> list[dict[str, Any]]:
    """``model.decode`` of a batch (N, 3, H, W) on the CPU in float32: per image "boxes" (K, 4)
    xyxy in the batch's pixels, "scores", "labels", "masks" (K, h, w) probabilities at
    ``model.mask_stride`` pixels per cell, in descending score order (a decode need not sort),
    and that "mask_stride". Up to ``top_k`` instances scoring at least ``score_threshold``
    (COCO's 100 per image at 0.05); the model's mode is left as it was."""
    found = decode_batch(model, images, amp, channels_last, score_threshold, top_k)
    stride = int(model.mask_stride)
    decoded = []
    for d in found:
        order = torch.argsort(d["scores"].float(), descending=True, stable=True).cpu()
        decoded.append({
            **{key: d[key].float().cpu()[order] for key in ("boxes", "scores", "masks")},
            "labels": d["labels"].cpu()[order], "mask_stride": stride,
        })  # fmt: skip
    return decoded


def _image_name(target: Mapping[str, Any]) -> str:
    return f"image {target['image_id']}" if "image_id" in target else "an image"


def to_stored_frame(
    target: Mapping[str, Any], prediction: Mapping[str, Any], chunk: int = PASTE_CHUNK
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One image's ground-truth record and predictions in its stored frame (``orig_size``),
    masks as COCO RLEs (``"segmentation"``), ground truth with its masks' ``"area"``.

    The target's masks (K, H', W') are cut to ``image_size`` (a batch pads them) and resized by
    nearest neighbour; the predicted probabilities are pasted by ``paste_masks_chunks`` (crop,
    bilinear resize, threshold 0.5). Either way ``chunk`` masks at a time, each chunk encoded
    before the next is made.
    """
    record, found = to_original_frame(target, prediction)
    height, width = (int(v) for v in target["image_size"])
    stored = (record["height"], record["width"])
    if "masks" not in target:
        raise ValueError(
            f"{_image_name(target)}: instance evaluation needs targets with 'masks' (K, H, W)"
        )
    masks = torch.as_tensor(target["masks"])
    if masks.dim() != 3 or len(masks) != len(record["labels"]):
        raise ValueError(
            f"{_image_name(target)} has {len(record['labels'])} labels but masks of shape "
            f"{tuple(masks.shape)}; expected ({len(record['labels'])}, H, W)"
        )
    if masks.shape[1] < height or masks.shape[2] < width:
        raise ValueError(
            f"{_image_name(target)}: its masks are {masks.shape[1]}x{masks.shape[2]} but the "
            f"image is {height}x{width} (image_size)"
        )
    truth = []
    for start in range(0, len(masks), chunk):
        part = masks[start : start + chunk, :height, :width].bool()
        truth += encode_masks(resize_mask(part, stored))
    record.update(segmentation=truth, area=rle_areas(truth))
    probabilities = torch.as_tensor(prediction["masks"])
    if len(probabilities) != len(found["scores"]):
        raise ValueError(
            f"{_image_name(target)}: {len(probabilities)} predicted masks for "
            f"{len(found['scores'])} scores; expected one mask per instance"
        )
    if "mask_stride" not in prediction:
        raise ValueError(
            f"{_image_name(target)}: the prediction lacks 'mask_stride' (input pixels per mask "
            "cell; segment_instances adds the model's)"
        )
    segmentation = []
    for part in paste_masks_chunks(
        probabilities, int(prediction["mask_stride"]), (height, width), stored, chunk=chunk
    ):
        segmentation += encode_masks(part)
    found["segmentation"] = segmentation
    return record, found


class InstanceEvaluator(DetectionEvaluator):
    """Collects ground truth and predictions of each image in its stored frame, masks as RLEs,
    and scores them with COCOeval twice, masks (``segm``) and boxes (``bbox``) (the
    :class:`~fcnlab.tasks.base.Evaluator` of instance segmentation). ``chunk``: masks pasted
    at full size at a time."""

    def __init__(
        self, num_classes: int, class_names: Sequence[str] | None = None, chunk: int = PASTE_CHUNK
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 mask, got {chunk}")
        self.chunk = chunk
        super().__init__(num_classes, class_names)

    def to_stored_frame(
        self, target: Mapping[str, Any], detection: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One image's record and predictions as kept: :func:`to_stored_frame`."""
        return to_stored_frame(target, detection, self.chunk)

    def evaluate(self) -> InstanceEvalResult:
        """COCO mask AP and box AP over every process's images."""
        records, found = self.gather()
        masks, boxes = coco_evaluate_instances(records, found, self.categories)
        return InstanceEvalResult(
            mask_stats=masks.stats,
            box_stats=boxes.stats,
            per_class_mask_ap=masks.class_ap(),
            per_class_mask_ap50=masks.class_ap(0.5),
            per_class_box_ap=boxes.class_ap(),
            num_images=len(records),
            mask_coco=masks,
            box_coco=boxes,
        )


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def blob_probabilities(
    count: int, height: int, width: int, stride: int, seed: int = 0
) -> torch.Tensor:
    """``count`` mask probabilities (count, h, w) at ``stride`` for a ``height`` x ``width``
    image: soft ellipses of random centres and radii (a model's masks are blobs, not noise)."""
    generator = torch.Generator().manual_seed(seed)
    cells_h, cells_w = math.ceil(height / stride), math.ceil(width / stride)
    ys = torch.arange(cells_h, dtype=torch.float32)[None, :, None]
    xs = torch.arange(cells_w, dtype=torch.float32)[None, None, :]
    centre = torch.rand(count, 2, generator=generator) * torch.tensor([cells_h, cells_w])
    radius = 2 + torch.rand(count, 2, generator=generator) * torch.tensor([cells_h, cells_w]) / 6
    distance = ((ys - centre[:, 0, None, None]) / radius[:, 0, None, None]) ** 2 + (
        (xs - centre[:, 1, None, None]) / radius[:, 1, None, None]
    ) ** 2
    return torch.sigmoid(4 * (1 - distance))


def _measure_peak(height: int, width: int, detections: int, chunk: int, stride: int) -> int:
    torch.set_num_threads(1)
    probabilities = blob_probabilities(detections, height, width, stride)
    prediction = {
        "boxes": torch.zeros(detections, 4),
        "scores": torch.linspace(1, 0.1, detections),
        "labels": torch.zeros(detections, dtype=torch.int64),
        "masks": probabilities,
        "mask_stride": stride,
    }
    target = {
        "boxes": torch.zeros(0, 4),
        "labels": torch.zeros(0, dtype=torch.int64),
        "masks": torch.zeros(0, height, width, dtype=torch.bool),
        "image_id": 0,
        "orig_size": (height, width),
        "image_size": (height, width),
    }
    evaluator = InstanceEvaluator(1, chunk=chunk)
    to_stored_frame(target, prediction, chunk)  # warm-up: libraries' first-call buffers
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    evaluator.process([prediction], [target])
    return 1024 * (_status_kib("VmHWM") - before)


def evaluation_peak_memory(
    height: int = 1024,
    width: int = 2048,
    detections: int = 100,
    chunk: int = PASTE_CHUNK,
    stride: int = 4,
) -> int:
    """Bytes by which processing one ``height`` x ``width`` image with ``detections`` predicted
    masks (:meth:`InstanceEvaluator.process`: paste, threshold, encode) raises the peak resident
    memory, beyond the masks at ``stride`` it starts from. ``chunk=detections`` measures pasting
    every mask at full size at once.

    Measured in a fresh process (memory freed earlier would otherwise be reused unseen) by
    Linux's peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``).
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_measure_peak, height, width, detections, chunk, stride).result()
