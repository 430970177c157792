"""SegNet: published size, mirrored decoder, unpooling at the pooling indices, any input size."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models import build_encoder, build_model, freeze_encoder, list_models
from fcnlab.models.segmentation.segnet import encode_with_indices

WIDTH = {"encoder_options": {"width": 0.125}}
# VGG16's convolutions per stage (configuration D).
VGG16_STAGES = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


def _convs(stages: list[list[int]]) -> list[tuple[int, int]]:
    pairs, previous = [], 3
    for stage in stages:
        for channels in stage:
            pairs.append((previous, channels))
            previous = channels
    return pairs


def _conv_params(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout


def _tiny(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return build_model("segnet", num_classes, **WIDTH).eval()


def test_registered() -> None:
    assert "segnet" in list_models()


def test_parameter_count_is_the_published_29_4m() -> None:
    with torch.device("meta"):
        model = build_model("segnet", 12)
    count = sum(p.numel() for p in model.parameters())
    convs = _convs(VGG16_STAGES)
    # Encoder: conv + BN per layer; decoder: each layer mirrored (out -> in) + BN but conv1_1,
    # replaced by the 3x3 classifier 64 -> 12.
    encoder = sum(_conv_params(i, o) + 2 * o for i, o in convs)
    decoder = sum(_conv_params(o, i) + 2 * i for i, o in convs[1:]) + _conv_params(64, 12)
    assert count == encoder + decoder == 29_449_932
    assert round(count / 1e6, 1) == 29.4


def test_decoder_mirrors_the_encoder() -> None:
    with torch.device("meta"):
        model = build_model("segnet", 5)
    convs = [m for m in model.decoder.modules() if isinstance(m, nn.Conv2d)]
    mirrored = [(o, i) for i, o in reversed(_convs(VGG16_STAGES)[1:])]
    assert [(c.in_channels, c.out_channels) for c in convs] == mirrored
    assert [len(stage) for stage in model.decoder.stages] == [3, 3, 3, 2, 1]
    assert all(isinstance(u, nn.MaxUnpool2d) for u in model.decoder.unpools)
    assert (model.head.in_channels, model.head.out_channels, model.head.kernel_size) == (
        64,
        5,
        (3, 3),
    )


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (45, 32), (333, 500)])
def test_logits_have_the_input_size(size: tuple[int, int]) -> None:
    with torch.no_grad():
        logits = _tiny(4)(torch.randn(2, 3, *size))
    assert logits.shape == (2, 4, *size)


def test_forward_equals_a_plain_pytorch_composition() -> None:
    model = _tiny()
    x = torch.randn(1, 3, 37, 50)
    features = model.encoder.features
    pool = nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=True)
    unpool = nn.MaxUnpool2d(2, 2)
    # vgg16_bn's max pools sit at these positions of ``features``.
    bounds = [0, 7, 14, 24, 34, 44]
    y, saved = x, []
    for start, stop in itertools.pairwise(bounds):
        y = features[start : stop - 1](y)
        size = y.shape[-2:]
        y, indices = pool(y)
        saved.append((indices, size))
    for stage, (indices, size) in zip(model.decoder.stages, reversed(saved), strict=True):
        y = stage(unpool(y, indices, output_size=size))
    expected = model.head(y)
    torch.testing.assert_close(model(x), expected)


def test_unpooling_puts_each_maximum_back_where_it_was() -> None:
    encoder = build_encoder("vgg16_bn", width=0.125).eval()
    x = torch.randn(1, 3, 35, 33)
    top, pooled = encode_with_indices(encoder, x)
    assert top is pooled[-1].features
    assert [p.size for p in pooled] == [(35, 33), (18, 17), (9, 9), (5, 5), (3, 3)]
    first = pooled[0]
    pre_pool = encoder.features[:6](x)
    # Hand check against the definition: each index is the flat argmax of its 2x2 window.
    window = pre_pool[0, 0, 2:4, 4:6].reshape(-1)
    row, col = divmod(int(window.argmax()), 2)
    assert first.indices[0, 0, 1, 2] == (2 + row) * 33 + (4 + col)
    # Ceil mode: the last odd row is a window of its own.
    assert first.features[0, 0, 17, 0] == pre_pool[0, 0, 34, 0:2].max()
    unpooled = F.max_unpool2d(first.features, first.indices, 2, 2, output_size=first.size)
    # Every maximum lands at its index; everything else is zero.
    values = unpooled.flatten(2).gather(2, first.indices.flatten(2))
    assert torch.equal(values, first.features.flatten(2))
    kept = unpooled != 0
    assert kept.sum() <= first.features.numel()
    assert torch.equal(unpooled[kept], pre_pool[kept])


def test_frozen_encoder_in_train_mode() -> None:
    model = freeze_encoder(_tiny()).train()
    buffers = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model(torch.randn(2, 3, 32, 32)).mean().backward()
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, buffers[key]), key
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())


def test_torchvision_layout_weights_load_into_the_encoder() -> None:
    source = build_encoder("vgg16_bn", width=0.125)
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    model = build_model("segnet", 2, encoder_weights=state, **WIDTH)
    assert torch.equal(model.encoder.features[0].weight, source.features[0].weight)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"encoder": "resnet18"}, "ResNetEncoder has no 'features' nn.Sequential"),
        ({"encoder_options": {"width": 0.125, "fc": True}}, "SegNet has no fc6/fc7 bottleneck"),
        ({"encoder_options": {"width": 0.125, "classic": True}}, r"features\[0\] is Conv2d"),
    ],
)
def test_unsuitable_encoders_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model("segnet", 2, **options)
