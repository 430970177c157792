"""FCN-32s/16s/8s: output size, zero-initialised scores, bilinear fusion, the classic reference
geometry, parameter counts, any encoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fcnlab.models import build_classifier, build_model, classifier_as_fcn, list_models

TINY = {"width": 0.0625}
SIZES = [(32, 32), (45, 37), (333, 500)]


def bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def randomize_scores(model: nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for conv in [model.decoder.score, *model.decoder.skip_scores]:
            conv.weight.normal_()
            conv.bias.normal_()


def test_list_models() -> None:
    assert {"fcn32s", "fcn16s", "fcn8s"} <= set(list_models())


@pytest.mark.parametrize("classic", [False, True])
@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
def test_output_has_the_input_size(name: str, classic: bool) -> None:
    model = build_model(name, 3, encoder_options=TINY, classic=classic).eval()
    randomize_scores(model)
    with torch.no_grad():
        for h, w in SIZES:
            assert model(torch.randn(1, 3, h, w)).shape == (1, 3, h, w)


@pytest.mark.parametrize(
    ("encoder", "options"), [("resnet18", {}), ("darknet53", TINY), ("darknet19", TINY)]
)
def test_other_encoders(encoder: str, options: dict[str, float]) -> None:
    model = build_model("fcn8s", 2, encoder=encoder, encoder_options=options).eval()
    # pool4 and pool3 of these encoders: the stride-16 and stride-8 stages.
    assert model.decoder.skip_indices == [3, 2]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 45, 37)).shape == (1, 2, 45, 37)


def test_scores_start_at_zero() -> None:
    model = build_model("fcn8s", 4, encoder_options=TINY).eval()
    with torch.no_grad():
        assert torch.count_nonzero(model(torch.randn(1, 3, 64, 64))) == 0


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
def test_default_fcn_is_bilinear_fusion_of_scores(name: str) -> None:
    """At initialisation the learned upsampling is F.interpolate's bilinear; the odd-sized input
    is zero-padded at the bottom/right to a multiple of 32 and the output cropped."""
    model = build_model(name, 3, encoder_options=TINY).eval()
    randomize_scores(model)
    x = torch.randn(2, 3, 45, 37)
    with torch.no_grad():
        features = model.encoder(F.pad(x, (0, 64 - 37, 0, 64 - 45)))
        d = model.decoder
        score = d.score(features[-1])
        pools = {"fcn32s": [], "fcn16s": [3], "fcn8s": [3, 2]}[name]  # pool4, pool3
        for pool, skip in zip(pools, d.skip_scores, strict=True):
            score = bilinear(score, 2) + skip(features[pool])
        expected = bilinear(score, 32 // 2 ** len(pools))[..., :45, :37]
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-4)


def test_at_once_scales_pool4_and_pool3() -> None:
    plain = build_model("fcn8s", 3, encoder_options=TINY).eval()
    randomize_scores(plain)
    at_once = build_model("fcn8s", 3, encoder_options=TINY, at_once=True).eval()
    at_once.load_state_dict(plain.state_dict())
    # Scaling a 1x1 convolution's input is scaling its weights (not its bias).
    with torch.no_grad():
        for skip, scale in zip(plain.decoder.skip_scores, (0.01, 0.0001), strict=True):
            skip.weight.mul_(scale)
        x = torch.randn(1, 3, 64, 64)
        torch.testing.assert_close(at_once(x), plain(x), rtol=1e-4, atol=1e-5)


def coord_map(layers: list[tuple[int, int, int]]) -> tuple[float, float]:
    """(a, b) with input coordinate = a * top coordinate + b, through (kernel, stride, padding)
    layers from the input up (the "coord_map" of the reference FCN code)."""
    a, b = 1.0, 0.0
    for k, s, p in layers:
        a, b = a * s, a * ((k - 1) / 2 - p) + b
    return a, b


def through_deconv(mapping: tuple[float, float], k: int, s: int) -> tuple[float, float]:
    a, b = mapping
    return a / s, b - a * (k - 1) / (2 * s)


def layer_geometry(module: nn.Module) -> tuple[int, int, int]:
    def first(v: int | tuple[int, ...]) -> int:
        return v if isinstance(v, int) else v[0]

    return first(module.kernel_size), first(module.stride), first(module.padding)


@pytest.mark.parametrize(
    ("name", "skip_offsets", "final_offset"),
    [("fcn32s", [], 19), ("fcn16s", [5], 27), ("fcn8s", [5, 9], 31)],
)
def test_classic_crop_offsets_follow_from_the_geometry(
    name: str, skip_offsets: list[int], final_offset: int
) -> None:
    model = build_model(name, 21, encoder_options=TINY, classic=True)
    encoder, decoder = model.encoder, model.decoder
    assert encoder.features[0].padding == (100, 100)
    assert all(m.ceil_mode for m in encoder.features if isinstance(m, nn.MaxPool2d))
    layers, maps = [], []
    for m in encoder.features:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            layers.append(layer_geometry(m))
        if isinstance(m, nn.MaxPool2d):
            maps.append(coord_map(layers))
    score = coord_map([*layers, layer_geometry(encoder.fc[0]), layer_geometry(encoder.fc[3])])
    offsets = []
    for up, pool in zip(decoder.upsamples, (3, 2), strict=False):
        score = through_deconv(score, up.kernel_size[0], up.stride[0])
        skip = maps[pool]
        assert skip[0] == score[0]
        offsets.append((score[1] - skip[1]) / skip[0])
    final = decoder.final_upsample
    score = through_deconv(score, final.kernel_size[0], final.stride[0])
    assert score[0] == 1
    assert offsets == skip_offsets == decoder.skip_offsets
    assert -score[1] == final_offset == decoder.final_offset


def test_fcn8s_vgg16_parameter_count() -> None:
    with torch.device("meta"):
        model = build_model("fcn8s", 21)
    k = 21
    vgg16_convs = 138_357_544 - (25088 * 4096 + 4096) - (4096 * 4096 + 4096) - (4096 * 1000 + 1000)
    fc = (512 * 7 * 7 * 4096 + 4096) + (4096 * 4096 + 4096)
    scores = (4096 + 1) * k + (512 + 1) * k + (256 + 1) * k
    upsampling = k * k * (4 * 4 + 4 * 4 + 16 * 16)  # bias-free, as in the reference net
    total = sum(p.numel() for p in model.parameters())
    assert total == vgg16_convs + fc + scores + upsampling == 134_489_759
    assert sum(p.numel() for p in model.encoder.parameters()) == vgg16_convs + fc


def test_encoder_and_decoder_split_the_parameters() -> None:
    model = build_model("fcn8s", 3, encoder_options=TINY)
    encoder = {id(p) for p in model.encoder.parameters()}
    decoder = {id(p) for p in model.decoder.parameters()}
    assert not encoder & decoder
    assert encoder | decoder == {id(p) for p in model.parameters()}
    # fc6/fc7 come from the classifier: they belong to the pretrained encoder.
    assert id(model.encoder.fc[0].weight) in encoder


def test_dilated_encoders() -> None:
    options = {"output_stride": 16}
    model = build_model("fcn16s", 2, encoder="resnet18", encoder_options=options).eval()
    assert model.decoder.skip_indices == [3]  # layer3, at stride 16 like layer4
    with torch.no_grad():
        assert model(torch.randn(1, 3, 40, 40)).shape == (1, 2, 40, 40)
    with pytest.raises(ValueError, match=r"strides \[16, 8\] but the encoder's deepest feature"):
        build_model("fcn8s", 2, encoder="resnet18", encoder_options={"output_stride": 8})


def test_classic_needs_vgg() -> None:
    with pytest.raises(ValueError, match="encoder 'resnet18' has no classic form"):
        build_model("fcn8s", 2, encoder="resnet18", classic=True)


def test_demo_path_classifier_weights_into_the_encoder() -> None:
    """A small VGG classifier on 32x32 images (fc6 over pool5's 1x1) initialises FCN-8s."""
    options = {"width": 0.125, "fc6_kernel": 1}
    classifier = build_classifier("vgg16", num_classes=3, **options).eval()
    state = classifier.state_dict()
    model = build_model("fcn8s", 2, encoder_options=options, encoder_weights=state).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pool5 = torch.flatten(classifier.features(x), 1)
        fc6 = F.relu(F.linear(pool5, state["classifier.0.weight"], state["classifier.0.bias"]))
        fc7 = F.relu(F.linear(fc6, state["classifier.3.weight"], state["classifier.3.bias"]))
        torch.testing.assert_close(model.encoder(x)[-1][:, :, 0, 0], fc7)
    convolutional = classifier_as_fcn("vgg16", state, num_classes=3, **options)
    model = build_model("fcn8s", 2, encoder=convolutional.encoder)
    assert model.encoder is convolutional.encoder
