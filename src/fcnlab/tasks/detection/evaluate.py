"""Detection evaluation: run a detector over a loader and score it with COCOeval.

Detections and ground truth are mapped back to each image's size as stored on disk
(``orig_size``) before :func:`~fcnlab.tasks.detection.coco_eval.coco_evaluate`, so COCO's
small/medium/large areas refer to the image as stored, whatever the transforms resized it to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fcnlab.ops.boxes import clip_boxes
from fcnlab.runtime.distributed import all_gather_objects, current_dist_info
from fcnlab.runtime.precision import autocast, model_input
from fcnlab.runtime.records import json_safe, nan_for_none
from fcnlab.tasks.base import run_evaluation
from fcnlab.tasks.detection.coco_eval import COCO_METRICS, CocoEvaluation, coco_evaluate


@dataclass
class DetectionEvalResult:
    """COCO scores of one evaluation: the 12 ``COCO_METRICS`` and AP per class.

    NaN marks a number without ground truth to measure (COCOeval's -1), and the AP of a class
    without ground-truth objects. ``coco`` (not serialised: None for a result read back from a
    record) is what COCOeval measured: the precision array behind the PR curves and
    pycocotools' summary text.
    """

    stats: dict[str, float]
    per_class_ap: list[float]
    per_class_ap50: list[float]
    num_images: int = 0
    stage: int = 0
    epoch: int = 0
    step: int = 0
    coco: CocoEvaluation | None = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float:
        """The number that picks the best checkpoint: COCO AP (IoU 0.50:0.95)."""
        return self.stats["AP"]

    @property
    def metric_name(self) -> str:
        """The name of :attr:`score`."""
        return "AP"

    def record(self) -> dict[str, Any]:
        """A JSON-safe ``metrics.jsonl`` line (NaN as null), the stats at the top level."""
        record: dict[str, Any] = {
            "kind": "eval",
            "task": "detection",
            "stage": self.stage,
            "epoch": self.epoch,
            "step": self.step,
            "num_images": self.num_images,
        }
        record.update(self.stats)
        record.update(per_class_ap=self.per_class_ap, per_class_ap50=self.per_class_ap50)
        return json_safe(record)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DetectionEvalResult:
        """The inverse of :meth:`record` (null back to NaN)."""
        missing = [
            key for key in (*COCO_METRICS, "per_class_ap", "per_class_ap50") if key not in record
        ]
        if missing:
            raise ValueError(
                f"detection evaluation record lacks {missing} (it has {sorted(record)})"
            )
        return cls(
            stats={key: nan_for_none(record[key]) for key in COCO_METRICS},
            per_class_ap=[nan_for_none(v) for v in record["per_class_ap"]],
            per_class_ap50=[nan_for_none(v) for v in record["per_class_ap50"]],
            num_images=int(record.get("num_images", 0)),
            stage=record.get("stage", 0),
            epoch=record.get("epoch", 0),
            step=record.get("step", 0),
        )


@torch.no_grad()
def decode_batch(
    model: nn.Module,
    images: torch.Tensor,
    amp: str = "off",
    channels_last: bool = False,
    score_threshold: float = 0.05,
    top_k: int = 100,
) -> list[dict[str, torch.Tensor]]:
    """``model.decode(model(images))`` of a batch (N, 3, H, W), the forward in ``amp`` and the
    decoding in float32: per image the dict the model decodes, on the model's device. The
    model's mode is left as it was."""
    images = model_input(model, images, channels_last)
    with autocast(images.device, amp):
        outputs = model(images)
    # Decoding (sigmoids, box arithmetic) in float32 whatever precision the forward ran in.
    outputs = {k: v.float() if v.is_floating_point() else v for k, v in outputs.items()}
    return model.decode(
        outputs, image_size=images.shape[-2:], score_threshold=score_threshold, top_k=top_k
    )


def detect(
    model: nn.Module,
    images: torch.Tensor,
    amp: str = "off",
    channels_last: bool = False,
    score_threshold: float = 0.05,
    top_k: int = 100,
) -> list[dict[str, torch.Tensor]]:
    """``model.decode`` of a batch (N, 3, H, W): per image {"boxes" (K, 4) xyxy in the batch's
    pixels, "scores", "labels"}, on the CPU in float32; the model's mode is left as it was."""
    found = decode_batch(model, images, amp, channels_last, score_threshold, top_k)
    return [
        {"boxes": d["boxes"].float().cpu(), "scores": d["scores"].float().cpu(),
         "labels": d["labels"].cpu()}
        for d in found
    ]  # fmt: skip


def to_original_frame(
    target: Mapping[str, Any], detections: Mapping[str, torch.Tensor]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A ground-truth record and detections in the image's stored frame (``orig_size``).

    Detections are clipped to the transformed image (``image_size``; a batch's padding lies
    at the bottom/right), then both are scaled by (W0 / W, H0 / H). The record keeps
    "labels", "iscrowd", "difficult" and "image_id" and gains "height"/"width". Tensors on any
    device come back on the CPU, where pycocotools reads them and processes gather them.
    """
    height, width = (int(v) for v in target["image_size"])
    orig_h, orig_w = (int(v) for v in target.get("orig_size", (height, width)))
    scale = torch.tensor([orig_w / width, orig_h / height] * 2, dtype=torch.float64)
    boxes = torch.as_tensor(target["boxes"], dtype=torch.float64).cpu().reshape(-1, 4)
    record: dict[str, Any] = {
        key: torch.as_tensor(target[key]).cpu()
        for key in ("labels", "iscrowd", "difficult")
        if key in target
    }
    record.update(boxes=boxes * scale, height=orig_h, width=orig_w)
    if "image_id" in target:
        record["image_id"] = int(target["image_id"])
    found = torch.as_tensor(detections["boxes"], dtype=torch.float64).cpu().reshape(-1, 4)
    found = clip_boxes(found, (height, width)) * scale
    return record, {
        "boxes": found,
        "scores": torch.as_tensor(detections["scores"]).cpu(),
        "labels": torch.as_tensor(detections["labels"]).cpu(),
    }


class DetectionEvaluator:
    """Collects ground truth and detections in each image's stored frame and scores them with
    COCOeval (the :class:`~fcnlab.tasks.base.Evaluator` of detection)."""

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None) -> None:
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.categories: int | list[str] = list(class_names) if class_names else num_classes
        self.reset()

    def reset(self) -> None:
        """Start a new evaluation."""
        self.records: list[dict[str, Any]] = []
        self.found: list[dict[str, Any]] = []

    def process(
        self, detections: Sequence[Mapping[str, torch.Tensor]], targets: Sequence[Mapping[str, Any]]
    ) -> None:
        """Add one batch: the decoded detections and the target dicts, image by image."""
        if len(detections) != len(targets):
            raise ValueError(
                f"model.decode returned {len(detections)} results for {len(targets)} images"
            )
        for target, detection in zip(targets, detections, strict=True):
            record, mapped = self.to_stored_frame(target, detection)
            self.records.append(record)
            self.found.append(mapped)

    def to_stored_frame(
        self, target: Mapping[str, Any], detection: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One image's ground-truth record and detections as kept: :func:`to_original_frame`."""
        return to_original_frame(target, detection)

    def gather(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The records and detections of every process's images, in rank order."""
        shares = all_gather_objects((self.records, self.found), current_dist_info())
        records = [record for share, _ in shares for record in share]
        found = [detection for _, share in shares for detection in share]
        if not records:
            raise ValueError("cannot evaluate on an empty loader (no images)")
        return records, found

    def evaluate(self) -> DetectionEvalResult:
        """COCO AP over every process's images."""
        records, found = self.gather()
        evaluation = coco_evaluate(records, found, self.categories)
        return DetectionEvalResult(
            stats=evaluation.stats,
            per_class_ap=evaluation.class_ap(),
            per_class_ap50=evaluation.class_ap(0.5),
            num_images=len(records),
            coco=evaluation,
        )


def evaluate_detection(
    model: nn.Module,
    loader: Any,
    num_classes: int,
    amp: str = "off",
    channels_last: bool = False,
    score_threshold: float = 0.05,
    top_k: int = 100,
    class_names: Sequence[str] | None = None,
) -> DetectionEvalResult:
    """Score a detector on ``loader`` (batches ``(images (N, 3, H, W), targets)`` from
    ``fcnlab.data.detection_collate``) with COCOeval in each image's stored frame.

    ``model.decode`` keeps up to ``top_k`` detections per image scoring at least
    ``score_threshold``. In a distributed run each process passes its share and the records are
    gathered, so every process returns the scores of the whole set.
    """
    evaluator = DetectionEvaluator(num_classes, class_names)

    def infer(images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return detect(model, images, amp, channels_last, score_threshold, top_k)

    return run_evaluation(model, loader, evaluator, infer)  # type: ignore[return-value]
