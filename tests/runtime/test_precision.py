"""``precision.autocast``: the forward's dtype on each device, and float32 again after it."""

from __future__ import annotations

import pytest
import torch
from helpers.devices import DEVICES
from torch import nn

from fcnlab.runtime.precision import autocast, model_device, model_input


@pytest.mark.parametrize(
    ("amp", "dtype"), [("off", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
@pytest.mark.parametrize("device", DEVICES)
def test_autocast_runs_convolutions_and_matmuls_in_the_amp_dtype(
    device: str, amp: str, dtype: torch.dtype
) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3).to(device)
    images = torch.rand(2, 3, 8, 8, device=device)
    with autocast(torch.device(device), amp):
        features = conv(images)
        product = features.flatten(1) @ features.flatten(1).T
    assert features.dtype == product.dtype == dtype
    assert conv(images).dtype == torch.float32  # nothing left switched on
    # PyTorch's own float32 convolution, to the precision of the amp dtype
    reference = conv(images)
    tolerance = {"off": 1e-5, "bf16": 3e-2, "fp16": 3e-3}[amp]
    torch.testing.assert_close(features.float(), reference, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("device", DEVICES)
def test_model_input_goes_to_the_models_device(device: str) -> None:
    model = nn.Conv2d(3, 2, 1).to(device)
    assert model_device(model) == next(model.parameters()).device
    images = model_input(model, torch.rand(1, 3, 4, 5), channels_last=True)
    assert images.device == model_device(model)
    assert images.is_contiguous(memory_format=torch.channels_last)
