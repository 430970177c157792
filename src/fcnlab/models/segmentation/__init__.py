"""Semantic segmentation architectures: logits (N, num_classes, H, W) at the input's size.

Importing this package registers FCN-32s/16s/8s, SegNet, DeconvNet and U-Net in ``MODELS``
(and U-Net's contracting path in ``ENCODERS``).
"""

from __future__ import annotations

from fcnlab.models.segmentation.deconvnet import DeconvNet
from fcnlab.models.segmentation.fcn import FCN
from fcnlab.models.segmentation.segnet import SegNet
from fcnlab.models.segmentation.unet import UNet, UNetEncoder

__all__ = ["FCN", "DeconvNet", "SegNet", "UNet", "UNetEncoder"]
