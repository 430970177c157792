"""Sliding windows: tiling, the weight window, blending, padding and bounded network inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.inference.sliding import (
    gaussian_weights,
    pad_to_multiple,
    padded_forward,
    sliding_window,
    tiles,
    window_starts,
    window_weights,
)


def conv_net(kernel: int, seed: int = 0) -> nn.Module:
    """3 -> 4 channels; a 1x1 conv is translation-equivariant, a 3x3 one is not at borders."""
    torch.manual_seed(seed)
    return nn.Conv2d(3, 4, kernel, padding=kernel // 2).eval()


@pytest.mark.parametrize(
    ("size", "window", "overlap", "expected"),
    [
        (10, 4, 0.5, [0, 2, 4, 6]),  # stride 2, exactly
        (11, 4, 0.0, [0, 4, 7]),  # stride 4 cannot reach 11: 3 windows spread evenly
        (10, 10, 0.5, [0]),
        (7, 12, 0.5, [0]),  # larger than the image: one window
    ],
)
def test_window_starts_by_hand(size: int, window: int, overlap: float, expected: list[int]) -> None:
    assert window_starts(size, window, overlap) == expected


@pytest.mark.parametrize("size", [33, 100, 517])
@pytest.mark.parametrize("window", [16, 32, 64])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_windows_cover_the_image_with_the_overlap(size: int, window: int, overlap: float) -> None:
    starts = window_starts(size, window, overlap)
    if window >= size:
        assert starts == [0]
        return
    assert starts[0] == 0 and starts[-1] + window == size
    for previous, start in itertools.pairwise(starts):
        assert start > previous  # no window twice
        assert window - (start - previous) >= window * overlap  # shared pixels: no gap either


def test_tiles_shrink_to_small_images() -> None:
    # Rows: one 20-pixel window. Columns: stride <= 16 over 50 - 32 = 18 pixels: 2 steps of 9.
    assert list(tiles(20, 50, (32, 32), 0.5)) == [(0, 0, 20, 32), (0, 9, 20, 32), (0, 18, 20, 32)]


def test_weight_window_is_a_positive_smooth_gaussian() -> None:
    weights = window_weights(16, 24)
    assert weights.shape == (16, 24) and weights.dtype == torch.float32
    assert (weights > 0).all()
    # The explicit formula: exp(-(i - c)^2 / (2 sigma^2)) with c = (n - 1) / 2, sigma = n / 8.
    row = [math.exp(-0.5 * ((i - 7.5) / 2.0) ** 2) for i in range(16)]
    col = [math.exp(-0.5 * ((j - 11.5) / 3.0) ** 2) for j in range(24)]
    expected = torch.tensor([[r * c for c in col] for r in row])
    torch.testing.assert_close(weights, expected)
    # Symmetric and rising monotonically to the centre: no kinks, no plateaus.
    torch.testing.assert_close(weights, weights.flip(0).flip(1))
    half = gaussian_weights(24)[:12]
    assert (half[1:] > half[:-1]).all()


def test_one_window_is_a_plain_forward() -> None:
    model = conv_net(3)
    images = torch.randn(2, 3, 30, 41)
    with torch.no_grad():
        torch.testing.assert_close(sliding_window(model, images, 64, 0.5), model(images))
        torch.testing.assert_close(sliding_window(model, images, (30, 41), 0.5), model(images))


@pytest.mark.parametrize(("window", "overlap"), [(24, 0.33), (16, 0.5), ((20, 28), 0.0)])
def test_translation_equivariant_model_matches_full_forward(
    window: int | tuple[int, int], overlap: float
) -> None:
    model = conv_net(1)
    images = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        blended = sliding_window(model, images, window, overlap, batch_size=3)
        torch.testing.assert_close(blended, model(images), atol=1e-5, rtol=1e-5)


def test_blending_is_the_weighted_mean_of_the_windows() -> None:
    """Two 8-pixel windows over 12 columns: columns 4..7 mix both by the Gaussian weights."""
    calls = iter([torch.zeros(1, 1, 1, 8), torch.ones(1, 1, 1, 8)])
    blended = sliding_window(lambda x: next(calls), torch.zeros(1, 3, 1, 12), 8, 0.5, 1)
    w = gaussian_weights(8)
    expected = torch.cat([torch.zeros(4), w[:4] / (w[4:] + w[:4]), torch.ones(4)]).float()
    torch.testing.assert_close(blended[0, 0, 0], expected)


def test_network_inputs_are_bounded_by_the_window() -> None:
    model, shapes = conv_net(1), []

    def forward(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return model(x)

    with torch.no_grad():
        sliding_window(forward, torch.randn(1, 3, 200, 300), 64, 0.25, batch_size=2)
    assert max(shapes) == (2, 3, 64, 64) and all(s[2:] == (64, 64) for s in shapes)
    assert sum(s[0] for s in shapes) == len(list(tiles(200, 300, (64, 64), 0.25)))


def test_progress_counts_the_windows_run_so_far() -> None:
    model, ran, done = conv_net(1), [0], []

    def forward(x: torch.Tensor) -> torch.Tensor:
        ran.append(ran[-1] + x.shape[0])  # windows through the network after this call
        return model(x)

    images = torch.randn(1, 3, 100, 150)
    with torch.no_grad():
        logits = sliding_window(forward, images, 64, 0.25, 3, progress=lambda *c: done.append(c))
        plain = sliding_window(model, images, 64, 0.25, 3)
    total = len(list(tiles(100, 150, (64, 64), 0.25)))
    assert done == [(count, total) for count in ran[1:]] and done[-1] == (total, total)
    torch.testing.assert_close(logits, plain)


@pytest.mark.parametrize(("height", "width"), [(45, 37), (64, 32), (1, 33)])
def test_padding_to_a_multiple_returns_the_input_size(height: int, width: int) -> None:
    images = torch.randn(2, 3, height, width)
    padded = pad_to_multiple(images, 32)
    assert padded.shape[-2] % 32 == 0 and padded.shape[-1] % 32 == 0
    assert padded.shape[-2] - height < 32 and padded.shape[-1] - width < 32
    torch.testing.assert_close(padded[..., :height, :width], images)
    assert padded[..., height:, :].abs().sum() == 0 and padded[..., width:].abs().sum() == 0

    def needs_multiples(x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0, x.shape
        return F.avg_pool2d(x, 3, 1, 1)

    out = padded_forward(needs_multiples, images, 32)
    assert out.shape == images.shape
    torch.testing.assert_close(out, needs_multiples(padded)[..., :height, :width])
    windowed = sliding_window(needs_multiples, images, 32, 0.5, multiple=32)
    assert windowed.shape == images.shape


def test_bad_arguments_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"overlap must be in \[0, 1\), got 1.0"):
        window_starts(100, 10, 1.0)
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        pad_to_multiple(torch.zeros(1, 3, 4, 4), 0)
