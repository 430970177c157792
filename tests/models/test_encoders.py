"""Encoders: torchvision's keys, features that match their metadata, width and output stride,
classifier checkpoints, staged forward."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models import build_encoder, list_encoders
from fcnlab.models.classifier import build_classifier
from fcnlab.models.encoders import StagedEncoder
from fcnlab.models.encoders.resnet import Bottleneck

ENCODER_NAMES = ["vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50", "resnet101"]
ENCODER_NAMES += ["darknet19", "darknet53"]
SMALL = {"vgg16": 0.125, "vgg16_bn": 0.125, "darknet19": 0.125, "darknet53": 0.125}

# torchvision's vgg16 / vgg16_bn: indices of the convolutions in ``features``.
VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_BN_CONVS = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
VGG16_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def vgg_expected(batch_norm: bool) -> dict[str, tuple[int, ...]]:
    expected: dict[str, tuple[int, ...]] = {}
    inp = 3
    for index, out in zip(
        VGG16_BN_CONVS if batch_norm else VGG16_CONVS, VGG16_CHANNELS, strict=True
    ):
        expected[f"features.{index}.weight"] = (out, inp, 3, 3)
        expected[f"features.{index}.bias"] = (out,)
        if batch_norm:
            for name in ("weight", "bias", "running_mean", "running_var"):
                expected[f"features.{index + 1}.{name}"] = (out,)
            expected[f"features.{index + 1}.num_batches_tracked"] = ()
        inp = out
    return expected


def bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    names = ("weight", "bias", "running_mean", "running_var")
    return {**{f"{prefix}.{n}": (channels,) for n in names}, f"{prefix}.num_batches_tracked": ()}


def resnet_expected(bottleneck: bool, blocks: list[int]) -> dict[str, tuple[int, ...]]:
    """torchvision's ResNet keys, written from its documented structure (v1.5 bottleneck)."""
    expected = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    inp = 64
    for stage, count in enumerate(blocks):
        planes = 64 * 2**stage
        out = planes * (4 if bottleneck else 1)
        for b in range(count):
            p = f"layer{stage + 1}.{b}"
            if bottleneck:
                convs = [(inp, planes, 1), (planes, planes, 3), (planes, out, 1)]
            else:
                convs = [(inp, planes, 3), (planes, planes, 3)]
            for i, (ci, co, k) in enumerate(convs, start=1):
                expected[f"{p}.conv{i}.weight"] = (co, ci, k, k)
                expected.update(bn(f"{p}.bn{i}", co))
            if b == 0 and (stage > 0 or inp != out):
                expected[f"{p}.downsample.0.weight"] = (out, inp, 1, 1)
                expected.update(bn(f"{p}.downsample.1", out))
            inp = out
    return expected


def shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_list_encoders() -> None:
    assert set(ENCODER_NAMES) <= set(list_encoders())


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_keys_are_torchvisions(batch_norm: bool) -> None:
    with torch.device("meta"):
        encoder = build_encoder("vgg16_bn" if batch_norm else "vgg16")
    assert shapes(encoder) == vgg_expected(batch_norm)


@pytest.mark.parametrize(
    ("name", "bottleneck", "blocks"),
    [
        ("resnet18", False, [2, 2, 2, 2]),
        ("resnet34", False, [3, 4, 6, 3]),
        ("resnet50", True, [3, 4, 6, 3]),
        ("resnet101", True, [3, 4, 23, 3]),
    ],
)
def test_resnet_keys_are_torchvisions(name: str, bottleneck: bool, blocks: list[int]) -> None:
    with torch.device("meta"):
        encoder = build_encoder(name)
    assert shapes(encoder) == resnet_expected(bottleneck, blocks)


# ResNet-34/101 differ from 18/50 only in block counts, checked above on the meta device.
@pytest.mark.parametrize("name", [n for n in ENCODER_NAMES if n not in ("resnet34", "resnet101")])
def test_features_match_metadata(name: str) -> None:
    options = {"width": SMALL[name]} if name in SMALL else {}
    encoder = build_encoder(name, **options).eval()
    with torch.no_grad():
        features = encoder(torch.randn(2, 3, 32, 64))
    assert encoder.reductions == [2, 4, 8, 16, 32]
    assert [f.shape for f in features] == [
        (2, c, 32 // r, 64 // r)
        for c, r in zip(encoder.out_channels, encoder.reductions, strict=True)
    ]


def test_width_scales_channels() -> None:
    assert build_encoder("vgg16", width=0.125).out_channels == [8, 16, 32, 64, 64]
    assert build_encoder("darknet53", width=0.25).out_channels == [16, 32, 64, 128, 256]
    with pytest.raises(ValueError, match="width must be a positive multiplier, got 0"):
        build_encoder("vgg16", width=0)


@pytest.mark.parametrize(
    ("output_stride", "reductions", "dilations"),
    [
        (32, [2, 4, 8, 16, 32], [1, 1, 1, 1]),
        (16, [2, 4, 8, 16, 16], [1, 1, 1, 2]),
        (8, [2, 4, 8, 8, 8], [1, 2, 2, 4]),
    ],
)
def test_resnet_output_stride(
    output_stride: int, reductions: list[int], dilations: list[int]
) -> None:
    encoder = build_encoder("resnet18", output_stride=output_stride).eval()
    assert encoder.reductions == reductions
    # DeepLab / torchvision: the first block of a dilated stage keeps the previous dilation.
    # (torchvision refuses dilated basic blocks; ResNet-18/34 follow the bottleneck rule here.)
    blocks = [*encoder.layer3, *encoder.layer4]
    assert [block.conv1.dilation[0] for block in blocks] == dilations
    assert [block.conv2.dilation[0] for block in blocks] == dilations
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 32, 32))
    assert [f.shape[-1] for f in features] == [32 // r for r in reductions]
    # Dilation changes no parameter: weights of the strided network load strictly.
    build_encoder("resnet18", build_encoder("resnet18").state_dict(), output_stride=output_stride)


def test_resnet_encoder_takes_a_classifier_checkpoint() -> None:
    classifier = build_classifier("resnet18", num_classes=10).eval()
    encoder = build_encoder("resnet18", classifier.state_dict()).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        # torchvision's forward, written out: stem, max pool, four stages.
        y = classifier.relu(classifier.bn1(classifier.conv1(x)))
        y = classifier.maxpool(y)
        for layer in (classifier.layer1, classifier.layer2, classifier.layer3, classifier.layer4):
            y = layer(y)
        torch.testing.assert_close(encoder(x)[-1], y)


def test_vgg_encoder_takes_a_classifier_checkpoint() -> None:
    classifier = build_classifier("vgg16_bn", num_classes=10, width=0.125)
    encoder = build_encoder("vgg16_bn", classifier.state_dict(), width=0.125)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, classifier.state_dict()[key])


def test_unknown_encoder_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown encoder 'vgg17'; known: darknet19, darknet53"):
        build_encoder("vgg17")
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32, got 4"):
        build_encoder("resnet18", output_stride=4)


def test_staged_encoder_returns_every_stage_output_in_turn() -> None:
    class Pyramid(StagedEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.stages = nn.ModuleList([nn.Identity(), nn.AvgPool2d(2), nn.AvgPool2d(2)])

    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    features = Pyramid()(x)
    assert [tuple(f.shape[-2:]) for f in features] == [(4, 4), (2, 2), (1, 1)]
    assert torch.equal(features[0], x) and float(features[2]) == x.mean()


def _block_reference(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A ResNet block's forward with an out-of-place residual sum, as the paper writes it."""
    identity = x if block.downsample is None else block.downsample(x)
    out = F.relu(block.bn1(block.conv1(x)))
    if isinstance(block, Bottleneck):
        out = F.relu(block.bn2(block.conv2(out)))
        out = block.bn3(block.conv3(out))
    else:
        out = block.bn2(block.conv2(out))
    return F.relu(out + identity)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_in_place_residual_sum_gives_the_same_outputs_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(name)
    # The first block of layer2 has a strided projection shortcut, the second an identity.
    for block in encoder.layer2:
        reference = copy.deepcopy(block)
        x = torch.randn(2, block.conv1.in_channels, 12, 12, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_()
        out, expected = block.train()(x), _block_reference(reference.train(), x_ref)
        assert torch.equal(out, expected)
        grad = torch.randn_like(out)
        out.backward(grad)
        expected.backward(grad)
        assert torch.equal(x.grad, x_ref.grad)
        for (key, p), p_ref in zip(block.named_parameters(), reference.parameters(), strict=True):
            assert torch.equal(p.grad, p_ref.grad), key
        for (key, b), b_ref in zip(block.named_buffers(), reference.buffers(), strict=True):
            assert torch.equal(b, b_ref), key
