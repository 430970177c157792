"""Fully convolutional models and their encoders: registries, builders, weight loading.

One package per task (``segmentation``, ``detection``, ``instance``), one file per
architecture; shared layers in ``blocks``, the feature pyramid in ``necks``. Importing this
package registers every encoder family and architecture.
"""

from __future__ import annotations

from fcnlab.models import detection, encoders, instance, segmentation
from fcnlab.models.classifier import build_classifier, classifier_as_fcn, list_classifiers
from fcnlab.models.encoders import load_darknet_weights
from fcnlab.models.freeze import (
    freeze_encoder,
    is_encoder_frozen,
    param_groups,
    unfreeze_encoder,
)
from fcnlab.models.registry import (
    ENCODERS,
    MODELS,
    build_encoder,
    build_model,
    list_encoders,
    list_models,
    model_task,
)
from fcnlab.models.weights import load_weights, read_state_dict

__all__ = [
    "ENCODERS",
    "MODELS",
    "build_classifier",
    "build_encoder",
    "build_model",
    "classifier_as_fcn",
    "detection",
    "encoders",
    "freeze_encoder",
    "instance",
    "is_encoder_frozen",
    "list_classifiers",
    "list_encoders",
    "list_models",
    "load_darknet_weights",
    "load_weights",
    "model_task",
    "param_groups",
    "read_state_dict",
    "segmentation",
    "unfreeze_encoder",
]
