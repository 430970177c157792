"""DeconvNet: published size, fc6/fc7 bottleneck in the encoder, transpose-conv mirror, any size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fcnlab.models import build_encoder, build_model, freeze_encoder, list_models
from fcnlab.models.segmentation.deconvnet import DeconvNet

WIDTH = {"encoder_options": {"width": 0.125}}
VGG16_CONVS = [
    (3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
    (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512),
]  # fmt: skip


def _conv_params(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout


def _tiny(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return build_model("deconvnet", num_classes, **WIDTH).eval()


def test_registered() -> None:
    assert "deconvnet" in list_models()


def test_parameter_count_is_the_published_252m() -> None:
    with torch.device("meta"):
        model = build_model("deconvnet", 21)
    count = sum(p.numel() for p in model.parameters())
    convs = sum(_conv_params(i, o) + 2 * o for i, o in VGG16_CONVS)
    fc = _conv_params(512, 4096, 7) + _conv_params(4096, 4096, 1)
    deconv_fc6 = _conv_params(4096, 512, 7) + 2 * 512
    # Mirror: each conv but conv1_1 reversed, conv1_1 mirrored 64 -> 64; all with batch norm.
    mirror = sum(_conv_params(o, i) + 2 * i for i, o in VGG16_CONVS[1:]) + _conv_params(64, 64)
    mirror += 2 * 64
    classifier = _conv_params(64, 21, 1)
    assert count == convs + fc + deconv_fc6 + mirror + classifier == 251_789_269
    assert round(count / 1e6) == 252


def test_decoder_is_transpose_convolutions_mirroring_the_encoder() -> None:
    with torch.device("meta"):
        model = build_model("deconvnet", 21)
    assert isinstance(model, DeconvNet)
    bottleneck = model.decoder.bottleneck[0]
    assert isinstance(bottleneck, nn.ConvTranspose2d)
    assert (bottleneck.in_channels, bottleneck.out_channels) == (4096, 512)
    assert (bottleneck.kernel_size, bottleneck.padding) == ((7, 7), (3, 3))
    layers = [
        m for m in model.decoder.stages.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
    ]
    assert all(isinstance(m, nn.ConvTranspose2d) for m in layers)
    expected = [(o, i) for i, o in reversed(VGG16_CONVS[1:])] + [(64, 64)]
    assert [(m.in_channels, m.out_channels) for m in layers] == expected
    assert (model.head.in_channels, model.head.kernel_size) == (64, (1, 1))


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (333, 500)])
def test_logits_have_the_input_size(size: tuple[int, int]) -> None:
    with torch.no_grad():
        logits = _tiny(5)(torch.randn(1, 3, *size))
    assert logits.shape == (1, 5, *size)


def test_fc6_fc7_are_part_of_the_frozen_encoder() -> None:
    model = freeze_encoder(_tiny())
    assert isinstance(model.encoder.fc[0], nn.Conv2d)
    assert not any(p.requires_grad for p in model.encoder.fc.parameters())
    assert all(p.requires_grad for p in model.decoder.parameters())


def test_imagenet_classifier_weights_fill_fc6_and_fc7() -> None:
    # A torchvision vgg16_bn checkpoint at width 1/8: fc6 is Linear(64*7*7, 512).
    source = build_encoder("vgg16_bn", width=0.125)
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    fc6 = torch.randn(512, 64 * 7 * 7)
    state |= {
        "classifier.0.weight": fc6,
        "classifier.0.bias": torch.randn(512),
        "classifier.3.weight": torch.randn(512, 512),
        "classifier.3.bias": torch.randn(512),
        "classifier.6.weight": torch.randn(1000, 512),
        "classifier.6.bias": torch.randn(1000),
    }
    model = build_model("deconvnet", 2, encoder_weights=state, **WIDTH)
    assert torch.equal(model.encoder.fc[0].weight, fc6.reshape(512, 64, 7, 7))


def test_encoder_without_fc_is_refused() -> None:
    encoder = build_encoder("vgg16_bn", width=0.125)
    with pytest.raises(ValueError, match="DeconvNet needs an encoder with an 'fc' block"):
        build_model("deconvnet", 2, encoder=encoder)
