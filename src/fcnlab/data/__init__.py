"""Segmentation data: real on-disk formats, the synthetic ``Shapes`` set, joint transforms."""

from __future__ import annotations

from fcnlab.data import datasets, transforms
from fcnlab.data.registry import DATASETS, build_dataset, list_datasets
from fcnlab.data.shapes import SHAPE_KINDS, Shapes, dominant_class
from fcnlab.data.stats import (
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
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SHAPE_KINDS",
    "ClassFrequencies",
    "Compose",
    "FrequencyCounter",
    "Shapes",
    "build_dataset",
    "class_frequencies",
    "datasets",
    "dominant_class",
    "eval_transforms",
    "list_datasets",
    "median_frequency_weights",
    "train_transforms",
    "transforms",
]
