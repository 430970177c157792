"""U-Net: the paper's size, plain-PyTorch reference, every upsampling mode and encoder, any size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models import build_model, list_encoders, list_models
from fcnlab.models.segmentation.unet import UNetEncoder

TINY = {"encoder_options": {"width": 0.125}}
SMALL_ENCODERS = [
    ("vgg16_bn", {"width": 0.125}),
    ("darknet19", {"width": 0.125}),
    ("resnet18", {}),
]


def _conv_params(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def _unet_params(in_channels: int, num_classes: int, batch_norm: bool) -> int:
    """The paper's U-Net counted layer by layer: 64..1024 channels, 2x2 up-convolutions."""
    channels = [64, 128, 256, 512, 1024]

    def double(cin: int, cout: int) -> int:
        norm = 2 * cout if batch_norm else 0
        conv = _conv_params(cin, cout, bias=not batch_norm) + norm
        return conv + _conv_params(cout, cout, bias=not batch_norm) + norm

    total, previous = 0, in_channels
    for c in channels:
        total += double(previous, c)
        previous = c
    for deep, skip in zip(channels[:0:-1], channels[-2::-1], strict=True):
        total += _conv_params(deep, skip, k=2) + double(2 * skip, skip)
    return total + _conv_params(64, num_classes, k=1)


def test_registered() -> None:
    assert "unet" in list_models()
    assert "unet" in list_encoders()


def test_parameter_count_is_the_papers_31_0m() -> None:
    with torch.device("meta"):
        paper = build_model(
            "unet", 2, encoder_options={"in_channels": 1, "batch_norm": False}, batch_norm=False
        )
        default = build_model("unet", 2)
    paper_count = sum(p.numel() for p in paper.parameters())
    assert paper_count == _unet_params(1, 2, batch_norm=False) == 31_030_658
    assert round(paper_count / 1e6, 1) == 31.0
    default_count = sum(p.numel() for p in default.parameters())
    assert default_count == _unet_params(3, 2, batch_norm=True) == 31_037_698


def test_encoder_metadata() -> None:
    encoder = UNetEncoder(width=0.25, depth=4)
    features = encoder(torch.randn(1, 3, 33, 20))
    assert encoder.out_channels == [16, 32, 64, 128]
    assert encoder.reductions == [1, 2, 4, 8]
    assert [tuple(f.shape[1:]) for f in features] == [
        (16, 33, 20),
        (32, 17, 10),
        (64, 9, 5),
        (128, 5, 3),
    ]


def _double(x: torch.Tensor, block: nn.Sequential) -> torch.Tensor:
    """Two conv + BN (eval) + ReLU, written with torch.nn.functional."""
    for unit in block:
        conv, bn = unit[0], unit[1]
        x = F.conv2d(x, conv.weight, conv.bias, padding=1)
        x = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False).relu()
    return x


def test_forward_equals_a_plain_pytorch_composition() -> None:
    torch.manual_seed(0)
    model = build_model("unet", 3, encoder_options={"width": 0.0625, "depth": 3}).eval()
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            nn.init.uniform_(bn.running_mean, -0.5, 0.5)
            nn.init.uniform_(bn.running_var, 0.5, 2.0)
    x = torch.randn(1, 3, 19, 22)
    stages = model.encoder.stages
    s0 = _double(x, stages[0][0])
    s1 = _double(F.max_pool2d(s0, 2, ceil_mode=True), stages[1][1])
    s2 = _double(F.max_pool2d(s1, 2, ceil_mode=True), stages[2][1])
    y = s2
    for block, skip in zip(model.decoder.blocks, (s1, s0), strict=True):
        up = F.conv_transpose2d(y, block.up.weight, block.up.bias, stride=2)
        up = up[..., : skip.shape[-2], : skip.shape[-1]]  # ceil-mode pools: one too many
        y = _double(torch.cat([skip, up], dim=1), block.conv)
    expected = F.conv2d(y, model.head.weight, model.head.bias)
    torch.testing.assert_close(model(x), expected)


def _assert_keeps_sizes(model: nn.Module) -> None:
    with torch.no_grad():
        for size in ((32, 32), (35, 49)):
            assert model.eval()(torch.randn(1, 3, *size)).shape == (1, 4, *size)


@pytest.mark.parametrize("upsample", ["learned", "bilinear", "nearest", "resize_conv"])
def test_every_upsampling_keeps_the_input_size(upsample: str) -> None:
    _assert_keeps_sizes(build_model("unet", 4, upsample=upsample, **TINY))


@pytest.mark.parametrize(("encoder", "options"), SMALL_ENCODERS)
def test_every_encoder_keeps_the_input_size(encoder: str, options: dict) -> None:
    _assert_keeps_sizes(build_model("unet", 4, encoder=encoder, encoder_options=options))


def test_odd_large_input() -> None:
    model = build_model("unet", 2, encoder_options={"width": 0.0625}).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 333, 500)).shape == (1, 2, 333, 500)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_interpolation_modes_interpolate_and_keep_deep_channels(mode: str) -> None:
    model = build_model("unet", 2, upsample=mode, **TINY)
    block = model.decoder.blocks[0]
    x = torch.randn(1, 128, 5, 7)
    expected = F.interpolate(x, scale_factor=2, mode=mode)
    torch.testing.assert_close(block.up(x), expected)
    # 128 upsampled channels + the 64-channel skip.
    assert block.conv[0][0].in_channels == 128 + 64


def test_reduced_first_feature_gets_a_final_block_without_skip() -> None:
    model = build_model("unet", 2, encoder="resnet18", decoder_channels=[64, 32, 16, 16, 8])
    assert model.encoder.reductions == [2, 4, 8, 16, 32]
    assert len(model.decoder.blocks) == 5
    last = model.decoder.blocks[-1]
    assert (last.up.in_channels, last.up.out_channels, last.up.factor) == (16, 8, 2)
    assert last.conv[0][0].in_channels == 8  # no skip to concatenate
    assert model.head.in_channels == 8


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"upsample": "bicubic"}, "upsample must be one of"),
        ({"decoder_channels": [8, 8]}, "decoder_channels needs 4 entries"),
        ({"encoder_options": {"depth": 1}}, "depth must be at least 2"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model("unet", 2, **options)
