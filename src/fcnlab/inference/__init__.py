"""Inference at any size: ``Predictor``, sliding windows, test-time augmentation, onnxruntime."""

from __future__ import annotations

from fcnlab.inference.loading import find_config, load_trained, read_metadata
from fcnlab.inference.metadata import METADATA_KEY, ModelMetadata, metadata_from_config
from fcnlab.inference.predictor import Prediction, Predictor, resolve_device, to_image_tensor
from fcnlab.inference.sliding import (
    pad_to_multiple,
    padded_forward,
    sliding_window,
    tiles,
    window_starts,
    window_weights,
)
from fcnlab.inference.tta import TTA, parse_tta, tta_logits

__all__ = [
    "METADATA_KEY",
    "TTA",
    "ModelMetadata",
    "Prediction",
    "Predictor",
    "find_config",
    "load_trained",
    "metadata_from_config",
    "pad_to_multiple",
    "padded_forward",
    "parse_tta",
    "read_metadata",
    "resolve_device",
    "sliding_window",
    "tiles",
    "to_image_tensor",
    "tta_logits",
    "window_starts",
    "window_weights",
]
