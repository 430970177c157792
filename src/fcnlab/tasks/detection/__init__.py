"""Object detection: COCO evaluation through pycocotools, reports, predictions."""

from __future__ import annotations

from fcnlab.tasks.detection.task import DetectionTask

__all__ = ["DetectionTask"]
