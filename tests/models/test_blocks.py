"""Shared layers: conv-norm-ReLU units and towers, size fitting, the prior-probability bias."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.models.blocks import (
    conv_bn_relu,
    fit_size,
    group_norm,
    init_prior_bias,
    tower,
)


def test_fit_size_crops_and_extends_edges() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    assert torch.equal(fit_size(x, (1, 2)), torch.tensor([[[[0.0, 1.0]]]]))
    expected = torch.tensor([[0.0, 1.0, 2.0, 2.0], [3.0, 4.0, 5.0, 5.0], [3.0, 4.0, 5.0, 5.0]])
    assert torch.equal(fit_size(x, (3, 4))[0, 0], expected)


def test_conv_bn_relu_keeps_the_size_and_matches_its_layers_in_turn() -> None:
    torch.manual_seed(0)
    unit = conv_bn_relu(3, 5, kernel_size=5, bias=False).eval()
    conv, norm, _ = unit
    assert conv.bias is None and isinstance(norm, nn.BatchNorm2d)
    x = torch.randn(2, 3, 9, 7)
    torch.testing.assert_close(unit(x), torch.relu(norm(conv(x))))
    assert unit(x).shape == (2, 5, 9, 7)
    plain = conv_bn_relu(3, 5, conv=nn.ConvTranspose2d, batch_norm=False)
    assert [type(m) for m in plain] == [nn.ConvTranspose2d, nn.ReLU]
    assert plain(x).shape == (2, 5, 9, 7)


@pytest.mark.parametrize(("channels", "groups"), [(256, 32), (16, 8), (24, 4), (2, 1), (1, 1)])
def test_group_norm_groups_hold_at_least_two_channels(channels: int, groups: int) -> None:
    assert group_norm(channels).num_groups == groups


def test_tower_is_flat_and_its_first_layer_takes_the_input_width() -> None:
    trunk = tower(8, 16, depth=2)
    assert [type(m) for m in trunk] == [nn.Conv2d, nn.GroupNorm, nn.ReLU] * 2
    assert (trunk[0].in_channels, trunk[3].in_channels) == (8, 16)
    assert trunk(torch.randn(1, 8, 5, 5)).shape == (1, 16, 5, 5)
    bare = tower(8, 16, depth=1, norm=None)
    assert [type(m) for m in bare] == [nn.Conv2d, nn.ReLU]
    assert bare[0].kernel_size == (3, 3) and bare[0].padding == (1, 1)


@pytest.mark.parametrize("probability", [0.01, 0.1, 0.5])
def test_prior_bias_starts_the_sigmoid_at_the_probability(probability: float) -> None:
    conv = init_prior_bias(nn.Conv2d(4, 3, 1), probability)
    with torch.no_grad():
        conv.weight.zero_()
        out = conv(torch.randn(1, 4, 2, 2)).sigmoid()
    torch.testing.assert_close(out, torch.full_like(out, probability))
