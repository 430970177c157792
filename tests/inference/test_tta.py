"""Test-time augmentation: the --tta syntax, flips undone, scales averaged on the input grid."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.inference.sliding import sliding_window
from fcnlab.inference.tta import TTA, parse_tta, tta_logits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("flip", TTA(flip=True)),
        ("flip,scales=0.75,1,1.25", TTA(flip=True, scales=(0.75, 1.0, 1.25))),
        ("scales=0.5,2", TTA(scales=(0.5, 2.0))),
        ("scales=1.5, flip", TTA(flip=True, scales=(1.5,))),
        (None, TTA()),
        ("none", TTA()),
    ],
)
def test_parse_tta(text: str | None, expected: TTA) -> None:
    assert parse_tta(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flop", "unknown item 'flop'"),
        ("scales=a", "scale 'a' is not a number"),
        ("flip,0.5", "unknown item '0.5'"),
        ("scales=0", "scale '0' must be positive"),
    ],
)
def test_parse_tta_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tta(text)


def symmetric_conv(seed: int = 0) -> nn.Module:
    """A 3x3 conv with left-right symmetric kernels: it commutes with horizontal flips."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_((conv.weight + conv.weight.flip(-1)) / 2)
    return conv.eval()


@torch.no_grad()
def test_flip_of_a_flip_equivariant_model_changes_nothing() -> None:
    model, images = symmetric_conv(), torch.randn(2, 3, 21, 34)
    torch.testing.assert_close(tta_logits(model, images, TTA(flip=True)), model(images))


@torch.no_grad()
def test_flip_averages_the_unflipped_logits() -> None:
    torch.manual_seed(1)
    model, images = nn.Conv2d(3, 2, 3, padding=1).eval(), torch.randn(1, 3, 16, 23)
    expected = (model(images) + model(images.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(tta_logits(model, images, TTA(flip=True)), expected)
    assert not torch.allclose(expected, model(images), atol=1e-3)  # the model is not symmetric


@torch.no_grad()
def test_scales_run_at_rounded_sizes_and_are_averaged_by_hand() -> None:
    """A 'model' that answers with its input's height everywhere: a 20x30 image at scales
    0.5, 1 and 2 is seen at heights 10, 20 and 40, so the mean is 70 / 3 at every pixel."""
    seen = []

    def height_model(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[-2:]))
        return torch.full((x.shape[0], 1, *x.shape[-2:]), float(x.shape[-2]))

    out = tta_logits(height_model, torch.rand(1, 3, 20, 30), TTA(flip=True, scales=(0.5, 1, 2)))
    assert seen == [(10, 15), (10, 15), (20, 30), (20, 30), (40, 60), (40, 60)]
    torch.testing.assert_close(out, torch.full((1, 1, 20, 30), 70 / 3))


@torch.no_grad()
def test_scales_resize_the_image_and_the_logits_bilinearly() -> None:
    torch.manual_seed(2)
    model, images = nn.Conv2d(3, 3, 3, padding=1).eval(), torch.rand(1, 3, 24, 36)
    small = F.interpolate(images, size=(18, 27), mode="bilinear", antialias=True)
    large = F.interpolate(images, size=(30, 45), mode="bilinear")
    back = [
        F.interpolate(model(small), size=(24, 36), mode="bilinear"),
        model(images),
        F.interpolate(model(large), size=(24, 36), mode="bilinear"),
    ]
    expected = sum(back) / 3
    torch.testing.assert_close(tta_logits(model, images, TTA(scales=(0.75, 1.0, 1.25))), expected)


@torch.no_grad()
def test_tta_drives_a_sliding_window() -> None:
    torch.manual_seed(3)
    model, images = nn.Conv2d(3, 2, 1).eval(), torch.randn(1, 3, 40, 52)
    windowed = tta_logits(lambda x: sliding_window(model, x, 16, 0.5), images, TTA(flip=True))
    torch.testing.assert_close(windowed, model(images), atol=1e-5, rtol=1e-5)
