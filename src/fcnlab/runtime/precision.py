"""Numeric precision of a forward pass and the shape of a model's output, shared by training,
evaluation, inference and export."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for ``amp`` ``"bf16"``/``"fp16"`` on ``device``; nothing for ``"off"``."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def main_output(output: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits (N, K, H, W) of a model's output: the tensor itself or ``output["out"]``."""
    return output["out"] if isinstance(output, dict) else output


def model_input(
    model: torch.nn.Module, images: torch.Tensor, channels_last: bool = False
) -> torch.Tensor:
    """``images`` on ``model``'s device, in channels-last memory format when asked."""
    images = images.to(model_device(model), non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device
