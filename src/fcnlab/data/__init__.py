"""Segmentation and detection data: real on-disk formats, the synthetic ``Shapes`` set, joint
transforms (masks or boxes), the detection collate function."""

from __future__ import annotations

from fcnlab.data import box_transforms, datasets, transforms
from fcnlab.data.box_transforms import detection_eval_transforms, detection_train_transforms
from fcnlab.data.detection import DetectionDataset, detection_collate, make_target
from fcnlab.data.registry import DATASETS, DETECTION_DATASETS, build_dataset, list_datasets
from fcnlab.data.shapes import SHAPE_KINDS, Shapes, dominant_class
from fcnlab.data.stats import (
    BoxCounter,
    BoxCounts,
    ClassFrequencies,
    FrequencyCounter,
    class_frequencies,
    median_frequency_weights,
)
from fcnlab.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    eval_transforms,
    train_transforms,
)

__all__ = [
    "DATASETS",
    "DETECTION_DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SHAPE_KINDS",
    "BoxCounter",
    "BoxCounts",
    "ClassFrequencies",
    "Compose",
    "DetectionDataset",
    "FrequencyCounter",
    "Shapes",
    "box_transforms",
    "build_dataset",
    "class_frequencies",
    "datasets",
    "detection_collate",
    "detection_eval_transforms",
    "detection_train_transforms",
    "dominant_class",
    "eval_transforms",
    "list_datasets",
    "make_target",
    "median_frequency_weights",
    "train_transforms",
    "transforms",
]
