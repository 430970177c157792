"""Semantic segmentation: losses, Long et al.'s metrics, evaluation, reports, predictions."""

from __future__ import annotations

from fcnlab.tasks.segmentation.task import SegmentationTask

__all__ = ["SegmentationTask"]
