"""Data for every task: real on-disk formats (one module per format, each registering its task
views), the synthetic ``Shapes`` set, one joint transform pipeline that moves masks, boxes and
instance masks with the image, and the collate function for target dicts."""

from __future__ import annotations

from fcnlab.data import datasets, transforms
from fcnlab.data.base import DetectionDataset, InstanceDataset, Instances, SegmentationDataset
from fcnlab.data.collate import collate_targets, detection_collate
from fcnlab.data.registry import DATASETS, build_dataset, dataset_tasks, list_datasets
from fcnlab.data.shapes import SHAPE_KINDS, Shapes, dominant_class
from fcnlab.data.stats import (
    BoxCounter,
    BoxCounts,
    ClassFrequencies,
    FrequencyCounter,
    class_frequencies,
    median_frequency_weights,
)
from fcnlab.data.targets import make_instance_target, make_target, select_instances
from fcnlab.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    eval_transforms,
    train_transforms,
)

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SHAPE_KINDS",
    "BoxCounter",
    "BoxCounts",
    "ClassFrequencies",
    "Compose",
    "DetectionDataset",
    "FrequencyCounter",
    "InstanceDataset",
    "Instances",
    "SegmentationDataset",
    "Shapes",
    "build_dataset",
    "class_frequencies",
    "collate_targets",
    "dataset_tasks",
    "datasets",
    "detection_collate",
    "dominant_class",
    "eval_transforms",
    "list_datasets",
    "make_instance_target",
    "make_target",
    "median_frequency_weights",
    "select_instances",
    "train_transforms",
    "transforms",
]
