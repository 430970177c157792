"""Layers built from ``fcnlab.ops``: they own parameters and configuration, not the maths.

Max pooling with indices and max unpooling are PyTorch's own ``nn.MaxPool2d(return_indices=True)``
and ``nn.MaxUnpool2d``; they are re-exported here so models import every layer from one place.
"""

from __future__ import annotations

from torch.nn import MaxPool2d, MaxUnpool2d

from fcnlab.nn.upsample import FixedUpsample, LearnedUpsample, ResizeConv

__all__ = ["FixedUpsample", "LearnedUpsample", "MaxPool2d", "MaxUnpool2d", "ResizeConv"]
