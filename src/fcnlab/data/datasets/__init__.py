"""The real on-disk data sets, one module per format; importing this package registers each
format's task views with ``DATASETS``."""

from __future__ import annotations

from fcnlab.data.datasets.ade20k import ADE20K
from fcnlab.data.datasets.cityscapes import Cityscapes
from fcnlab.data.datasets.coco import COCODetection, COCOSegmentation, merge_instance_masks
from fcnlab.data.datasets.folder import ImageMaskFolder
from fcnlab.data.datasets.voc import VOCDetection, VOCSegmentation, read_sbd_mask

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
