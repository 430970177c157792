"""Encoder families; importing this package registers them in ``ENCODERS``."""

from __future__ import annotations

from fcnlab.models.encoders.base import Encoder, StagedEncoder, scale_channels
from fcnlab.models.encoders.darknet import DarkNetEncoder, load_darknet_weights
from fcnlab.models.encoders.resnet import ResNetEncoder
from fcnlab.models.encoders.vgg import VGGEncoder

__all__ = [
    "DarkNetEncoder",
    "Encoder",
    "ResNetEncoder",
    "StagedEncoder",
    "VGGEncoder",
    "load_darknet_weights",
    "scale_channels",
]
