"""CondInst's dynamic mask head against grouped and per-instance convolutions, its parameter
count and layout, and the relative coordinates worked by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.dynamic_heads import heads_by_hand, run_head

from fcnlab.models.instance.dynamic import (
    dynamic_head_inputs,
    dynamic_layer_shapes,
    dynamic_mask_head,
    dynamic_params_count,
    relative_coordinates,
    split_dynamic_params,
)


def random_case(n: int, c: int, channels: int, layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(n * 100 + c + layers)
    features = torch.randn(n, c, 5, 7, generator=generator)
    params = torch.randn(n, dynamic_params_count(c, channels, layers), generator=generator)
    return features, params


def test_paper_head_has_169_parameters() -> None:
    assert dynamic_params_count(8 + 2) == 169
    assert dynamic_layer_shapes(10) == [(8, 10), (8, 8), (1, 8)]
    assert dynamic_params_count(10, channels=16, layers=2) == 10 * 16 + 16 + 16 + 1
    assert dynamic_params_count(10, layers=1) == 11


@pytest.mark.parametrize(
    ("n", "c", "channels", "layers"), [(3, 10, 8, 3), (2, 4, 5, 2), (4, 6, 8, 1)]
)
def test_matches_one_conv2d_per_instance(n: int, c: int, channels: int, layers: int) -> None:
    features, params = random_case(n, c, channels, layers)
    out = dynamic_mask_head(features, params, channels, layers)
    assert out.shape == (n, 1, 5, 7)
    for i, head in enumerate(heads_by_hand(params, c, channels, layers)):
        expected = run_head(features[i : i + 1], head)
        torch.testing.assert_close(out[i : i + 1], expected, rtol=1e-5, atol=1e-5)


def test_matches_the_grouped_convolution_of_the_authors_code() -> None:
    # AdelaiDet's mask_heads_forward: all instances as the channel groups of one image.
    n, c, channels, layers = 5, 10, 8, 3
    features, params = random_case(n, c, channels, layers)
    heads = heads_by_hand(params, c, channels, layers)
    x = features.reshape(1, n * c, 5, 7)
    for k in range(layers):
        weight = torch.cat([head[k][0] for head in heads])
        bias = torch.cat([head[k][1] for head in heads])
        x = F.conv2d(x, weight, bias, groups=n)
        x = F.relu(x) if k < layers - 1 else x
    expected = x.reshape(n, 1, 5, 7)
    actual = dynamic_mask_head(features, params, channels, layers)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_split_is_weights_then_biases() -> None:
    params = torch.arange(169.0)[None]
    weights, biases = split_dynamic_params(params, 10)
    assert [tuple(w.shape) for w in weights] == [(1, 8, 10), (1, 8, 8), (1, 1, 8)]
    assert weights[0][0, 1, 0] == 10  # row-major (out, in): the second output's first weight
    assert weights[2][0, 0, 7] == 80 + 64 + 7
    assert biases[0][0].tolist() == list(range(152, 160))
    assert biases[2][0].tolist() == [168.0]


def test_no_instances_and_wrong_sizes() -> None:
    out = dynamic_mask_head(torch.zeros(0, 10, 4, 6), torch.zeros(0, 169))
    assert out.shape == (0, 1, 4, 6)
    with pytest.raises(ValueError, match=r"needs \(N, 169\) parameters, got \(2, 168\)"):
        dynamic_mask_head(torch.zeros(2, 10, 4, 6), torch.zeros(2, 168))
    with pytest.raises(ValueError, match="layers, in_channels and channels >= 1"):
        dynamic_params_count(10, layers=0)


def test_relative_coordinates_by_hand() -> None:
    # A 2 x 3 grid at stride 8: cell centres x = 4, 12, 20 and y = 4, 12. An instance seen at
    # (12, 4) on P3 (size of interest 64), another at (24, 8) on P4 (128).
    locations = torch.tensor([[12.0, 4.0], [24.0, 8.0]])
    coordinates = relative_coordinates(locations, torch.tensor([64.0, 128.0]), (2, 3), 8)
    assert coordinates.shape == (2, 2, 2, 3)
    x0 = torch.tensor([8.0, 0.0, -8.0]) / 64
    y0 = torch.tensor([0.0, -8.0]) / 64
    torch.testing.assert_close(coordinates[0, 0], x0.expand(2, 3))
    torch.testing.assert_close(coordinates[0, 1], y0[:, None].expand(2, 3))
    x1 = torch.tensor([20.0, 12.0, 4.0]) / 128
    y1 = torch.tensor([4.0, -4.0]) / 128
    torch.testing.assert_close(coordinates[1, 0], x1.expand(2, 3))
    torch.testing.assert_close(coordinates[1, 1], y1[:, None].expand(2, 3))


def test_head_inputs_are_coordinates_then_the_instances_image_features() -> None:
    features = torch.randn(2, 3, 2, 3)
    locations = torch.tensor([[12.0, 4.0], [4.0, 12.0], [20.0, 4.0]])
    scales = torch.tensor([64.0, 64.0, 128.0])
    inputs = dynamic_head_inputs(features, torch.tensor([1, 0, 1]), locations, scales, 8)
    assert inputs.shape == (3, 5, 2, 3)
    torch.testing.assert_close(inputs[:, :2], relative_coordinates(locations, scales, (2, 3), 8))
    torch.testing.assert_close(inputs[:, 2:], features[[1, 0, 1]])
