from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.nn import FixedUpsample, LearnedUpsample, MaxPool2d, MaxUnpool2d, ResizeConv


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_fixed_upsample_is_interpolate(mode: str) -> None:
    x = rand(2, 3, 5, 6)
    layer = FixedUpsample(4, mode)
    assert list(layer.parameters()) == []
    torch.testing.assert_close(layer(x), F.interpolate(x, scale_factor=4, mode=mode))


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5, 8, 16, 32])
def test_learned_upsample_bilinear_init_equals_interpolate(factor: int) -> None:
    x = rand(2, 4, 7, 5, seed=factor)
    layer = LearnedUpsample(4, 4, factor)
    expected = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    result = layer(x)
    assert result.shape == (2, 4, 7 * factor, 5 * factor)
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=1e-5)


def test_learned_upsample_is_a_transpose_convolution() -> None:
    # The same weights in nn.ConvTranspose2d (stride f, padding f/2, zero edges) give the same
    # interior; the layer differs only at the border, where it replicates instead of darkening.
    layer = LearnedUpsample(3, 5, 2, init="default")
    reference = nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1)
    with torch.no_grad():
        reference.weight.copy_(layer.weight)
        reference.bias.copy_(layer.bias)
    x = rand(1, 3, 6, 6, seed=7)
    torch.testing.assert_close(layer(x)[..., 2:-2, 2:-2], reference(x)[..., 2:-2, 2:-2])
    zeros_edge = LearnedUpsample(3, 5, 2, init="default", edge="zeros")
    zeros_edge.load_state_dict(layer.state_dict())
    torch.testing.assert_close(zeros_edge(x), reference(x))


def test_zero_padded_deconvolution_darkens_the_border() -> None:
    x = torch.ones(1, 1, 4, 4)
    replicate = LearnedUpsample(1, 1, 2)(x)
    zeros = LearnedUpsample(1, 1, 2, edge="zeros")(x)
    torch.testing.assert_close(replicate, torch.ones(1, 1, 8, 8))
    assert zeros[0, 0, 0, 0].item() == pytest.approx(0.75**2)
    assert zeros[0, 0, 4, 4].item() == pytest.approx(1.0)


def test_bilinear_init_is_channel_diagonal() -> None:
    layer = LearnedUpsample(3, 3, 2)
    x = torch.zeros(1, 3, 4, 4)
    x[:, 1] = 1.0
    out = layer(x)
    assert out[:, 0].abs().max() == 0 and out[:, 2].abs().max() == 0
    assert torch.allclose(out[:, 1], torch.ones(1, 8, 8))


def test_checkerboard_kernel_is_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match=r"not a multiple of the factor 2.*checkerboard"):
        LearnedUpsample(1, 1, 2, kernel_size=3)
    layer = LearnedUpsample(1, 1, 2, kernel_size=3, init="default", allow_checkerboard=True)
    assert layer(rand(1, 1, 5, 5)).shape == (1, 1, 10, 10)


def test_bilinear_init_needs_room_for_the_kernel() -> None:
    with pytest.raises(ValueError, match="needs kernel_size >= 4"):
        LearnedUpsample(1, 1, 2, kernel_size=2)


def test_learned_upsample_learns() -> None:
    torch.manual_seed(0)
    layer = LearnedUpsample(2, 2, 2, init="zeros")
    x = rand(4, 2, 6, 6, seed=1)
    target = F.interpolate(x, scale_factor=2, mode="bilinear")
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    first = None
    for _ in range(150):
        loss = F.mse_loss(layer(x), target)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01 * first


def test_resize_conv_shape_and_composition() -> None:
    layer = ResizeConv(3, 4, 2, mode="nearest")
    x = rand(1, 3, 5, 7)
    expected = layer.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(layer(x), expected)
    assert layer(x).shape == (1, 4, 10, 14)


def test_max_unpooling_puts_maxima_back() -> None:
    x = torch.tensor([[1.0, 2, 5, 3], [4, 0, 1, 1], [0, 7, 2, 2], [3, 1, 9, 8]]).view(1, 1, 4, 4)
    pooled, indices = MaxPool2d(2, return_indices=True)(x)
    assert pooled.view(-1).tolist() == [4.0, 5.0, 7.0, 9.0]
    unpooled = MaxUnpool2d(2)(pooled, indices)
    expected = torch.zeros(4, 4)
    expected[1, 0], expected[0, 2], expected[2, 1], expected[3, 2] = 4, 5, 7, 9
    assert torch.equal(unpooled[0, 0], expected)
