"""The devices a test runs on: the CPU always, CUDA where there is a GPU (skipped elsewhere), so
that the CPU variant proves a device test right on any machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import torch

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
# For @pytest.mark.parametrize("device", DEVICES).
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


def to_device(value: Any, device: str | torch.device) -> Any:
    """``value`` with every tensor in it (through dicts, lists and tuples) on ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {key: to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(item, device) for item in value)
    return value


def assert_same_detections(
    found: Sequence[Mapping[str, torch.Tensor]],
    expected: Sequence[Mapping[str, torch.Tensor]],
    atol: float = 1e-4,
) -> None:
    """Per image the same keys, integer fields (labels, locations) equal and float fields
    (boxes, scores) within ``atol``, ``found`` brought to the CPU: a GPU's own sigmoid and
    box arithmetic may differ from the CPU's in the last bits."""
    assert len(found) == len(expected)
    for image, (ours, reference) in enumerate(zip(found, expected, strict=True)):
        assert ours.keys() == reference.keys(), image
        for name, want in reference.items():
            got = ours[name].cpu()
            assert got.dtype == want.dtype, (image, name)
            if want.is_floating_point():
                torch.testing.assert_close(got, want, atol=atol, rtol=0, msg=f"{image} {name}")
            else:
                assert torch.equal(got, want), (image, name)
