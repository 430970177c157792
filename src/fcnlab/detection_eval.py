"""Public face of detection evaluation (in :mod:`fcnlab.tasks.detection.coco_eval`)."""

from __future__ import annotations

from fcnlab.tasks.detection.coco_eval import (
    COCO_METRICS,
    IOU_THRESHOLDS,
    RECALL_POINTS,
    CocoEvaluation,
    average_precision,
    coco_evaluate,
    coco_map,
    detections_to_coco,
    to_coco,
    voc_ap50,
)

__all__ = [
    "COCO_METRICS",
    "IOU_THRESHOLDS",
    "RECALL_POINTS",
    "CocoEvaluation",
    "average_precision",
    "coco_evaluate",
    "coco_map",
    "detections_to_coco",
    "to_coco",
    "voc_ap50",
]
