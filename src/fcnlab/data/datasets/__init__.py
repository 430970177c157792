"""The real on-disk data sets; importing this package registers them with ``DATASETS``
(segmentation) and ``DETECTION_DATASETS`` (boxes)."""

from __future__ import annotations

from fcnlab.data.datasets.ade20k import ADE20K
from fcnlab.data.datasets.cityscapes import Cityscapes
from fcnlab.data.datasets.coco import COCOSegmentation, merge_instance_masks
from fcnlab.data.datasets.coco_detection import COCODetection
from fcnlab.data.datasets.folder import ImageMaskFolder
from fcnlab.data.datasets.voc import VOCSegmentation, read_sbd_mask
from fcnlab.data.datasets.voc_detection import VOCDetection

__all__ = [
    "ADE20K",
    "COCODetection",
    "COCOSegmentation",
    "Cityscapes",
    "ImageMaskFolder",
    "VOCDetection",
    "VOCSegmentation",
    "merge_instance_masks",
    "read_sbd_mask",
]
