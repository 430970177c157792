"""Instance segmentation: COCO mask AP and box AP through pycocotools, reports, pictures and
predictions."""

from __future__ import annotations

from fcnlab.tasks.instance.task import InstanceTask

__all__ = ["InstanceTask"]
